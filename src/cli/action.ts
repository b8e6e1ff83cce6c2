import type { Command } from 'commander';
import { CliContext, type CliIo } from './context.js';

/**
 * Wraps a command body for commander: builds the context from the command's
 * options (global ones included), then runs `body` with the positional
 * arguments and the command's own options.
 */
export function action<A extends unknown[]>(io: CliIo, body: (ctx: CliContext, ...args: A) => Promise<void>) {
  return async (...args: unknown[]): Promise<void> => {
    const command = args[args.length - 1] as Command;
    await body(CliContext.of(command, io), ...(args.slice(0, -1) as A));
  };
}
