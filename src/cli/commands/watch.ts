import type { Command } from 'commander';
import type { StoreEvent } from '../../client/index.js';
import { action } from '../action.js';
import { intIn, type CliIo } from '../context.js';

interface WatchOptions {
  album?: string;
  type?: string[];
  count?: number;
}

/**
 * `watch`: prints the service's events as they arrive (MQTT), one line each
 * (`--json`: the CloudEvent as one JSON line), until Ctrl-C or `--count`.
 * "watching …" on stderr says when the subscription is in place.
 */
export function watchCommand(program: Command, io: CliIo): void {
  program.command('watch').description('print the service\'s events live (MQTT)')
    .option('-a, --album <album>', 'only events of this album')
    .option('-t, --type <type...>', 'only these event types; a trailing * matches a prefix (imagestore.image.*)')
    .option('-n, --count <n>', 'exit after this many events', intIn(1, 1_000_000_000))
    .action(action(io, async (ctx, opts: WatchOptions) => {
      const stream = ctx.client.events({ filter: { album: opts.album, types: opts.type } });
      const stop = () => void stream.close();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        await stream.ready;
        ctx.note(`watching events on ${ctx.client.mqttUrl} (Ctrl-C to stop)`);
        let seen = 0;
        for await (const event of stream) {
          ctx.result(event, line(event));
          seen += 1;
          if (opts.count !== undefined && seen >= opts.count) break;
        }
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        await stream.close();
      }
    }));
}

function line(event: StoreEvent): string {
  return `${event.time}  ${event.type.replace(/^imagestore\./, '').padEnd(15)} ${event.data?.message ?? event.subject}`;
}
