import { diffCommand } from './commands/diff.js';
import { Command, CommanderError, Option } from 'commander';
import { ImageStoreError } from '../client/index.js';
import { albumsCommand } from './commands/albums.js';
import { downloadCommand } from './commands/download.js';
import { fsckCommand } from './commands/fsck.js';
import { importCommand } from './commands/import.js';
import { imagesCommand } from './commands/images.js';
import { uploadCommand } from './commands/upload.js';
import { watchCommand } from './commands/watch.js';
import { ExitError, EXIT, UsageError, type CliIo } from './context.js';

/** The service URL when neither --url nor IMAGESTORE_URL is given. */
export const DEFAULT_URL = 'http://127.0.0.1:3333';

/** Builds the `imagestore` command tree, writing to `io`. */
export function buildProgram(io: CliIo, version = '0.0.0'): Command {
  const program = new Command('imagestore')
    .description('imagestore command line: albums, images, bulk upload/download, URL imports, live events')
    .version(version)
    .exitOverride()
    .configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) })
    .showHelpAfterError('(add --help for usage)')
    .addOption(new Option('--url <url>', 'service base URL').env('IMAGESTORE_URL').default(DEFAULT_URL))
    .addOption(new Option('--key <key>', 'API key (Authorization: Bearer)').env('IMAGESTORE_KEY'))
    .addOption(new Option('--mqtt-url <url>', 'MQTT broker for watch (default: MQTT_URL, else MQTT_HOST/MQTT_PORT, else the URL\'s host, port 1883)').env('IMAGESTORE_MQTT_URL'))
    .option('--json', 'print results as JSON (one document per line) for scripts', false)
    .addOption(new Option('--progress <mode>', 'progress display on stderr').choices(['auto', 'tty', 'plain', 'none']).default('auto'));
  albumsCommand(program, io);
  imagesCommand(program, io);
  uploadCommand(program, io);
  downloadCommand(program, io);
  importCommand(program, io);
  watchCommand(program, io);
  fsckCommand(program, io);
  diffCommand(program, io);
  return program;
}

/**
 * Runs the CLI on `args` (without node and the script) and returns the exit
 * code: 0 ok, 1 the operation failed, 2 usage error. Never calls process.exit.
 */
export async function runCli(args: string[], io: CliIo, version?: string): Promise<number> {
  const program = buildProgram(io, version);
  try {
    await program.parseAsync(args, { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    // commander has printed its own message (or the help) already.
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (err instanceof ExitError) return err.exitCode;
    const json = program.opts().json === true;
    if (err instanceof UsageError) {
      io.stderr.write(`error: ${err.message}\n`);
      return EXIT.usage;
    }
    if (json) io.stdout.write(`${JSON.stringify(err instanceof ImageStoreError ? err.toJSON() : { error: (err as Error).message })}\n`);
    io.stderr.write(`error: ${describe(err)}\n`);
    return EXIT.failed;
  }
}

function describe(err: unknown): string {
  if (err instanceof ImageStoreError) return err.status > 0 ? `${err.message} (HTTP ${err.status})` : err.message;
  const e = err as NodeJS.ErrnoException;
  return e.code === 'ENOENT' && e.path ? `no such file or directory: ${e.path}` : e.message ?? String(err);
}
