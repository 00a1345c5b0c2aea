#!/usr/bin/env node
// The convzoo command line: a table of commands, each calling library functions. Errors map to exit
// codes in one place (exitCodeFor).
import { Command, Option } from 'commander';
import { ConvzooError } from '../errors.js';
import { commands } from './commands.js';

export function exitCodeFor(e: unknown): number {
  if (!(e instanceof ConvzooError)) return 1;
  switch (e.code) {
    case 'E_ARG': case 'E_NOT_FOUND': return 2;
    case 'E_IO': case 'E_HASH': case 'E_FORMAT': case 'E_DATA': case 'E_IMAGE': case 'E_UNSAFE_PICKLE': return 3;
    case 'E_STATE_DICT': case 'E_SHAPE': case 'E_DTYPE': return 4;
    default: return 1;
  }
}

const program = new Command('convzoo')
  .description('Classic image-classification CNNs on libtorch: list, inspect, predict, train, evaluate.')
  .showHelpAfterError();

for (const spec of commands) {
  const cmd = program.command(spec.name).description(spec.description);
  for (const a of spec.args ?? []) cmd.argument(a.name, a.description);
  for (const o of spec.options ?? []) {
    const opt = new Option(o.flags, o.description);
    if (o.default !== undefined) opt.default(o.default);
    if (o.choices) opt.choices(o.choices);
    if (o.parse) opt.argParser(o.parse);
    cmd.addOption(opt);
  }
  cmd.action(async (...args: unknown[]) => {
    const opts = (args[args.length - 2] ?? {}) as Record<string, unknown>;
    const positional = args.slice(0, -2);
    try {
      const code = await spec.run(positional, opts);
      if (typeof code === 'number') process.exitCode = code;
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      process.stderr.write(`convzoo ${spec.name}: ${msg}\n`);
      process.exitCode = exitCodeFor(e);
    }
  });
}

// A closed pipe (`convzoo list | head`) ends the program quietly.
process.stdout.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'EPIPE') process.exit(0); throw e; });

program.parseAsync(process.argv);
