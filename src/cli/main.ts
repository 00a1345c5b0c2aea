#!/usr/bin/env node
// The convzoo command line: a table of commands, each calling library functions. Errors map to exit
// codes in one place (exitCodeFor).
import { createRequire } from 'node:module';
import { Command, Option } from 'commander';
import { ConvzooError } from '../errors.js';
import { commandGroups, commands } from './commands.js';

export function exitCodeFor(e: unknown): number {
  if (!(e instanceof ConvzooError)) return 1;
  switch (e.code) {
    case 'E_ARG':
    case 'E_NOT_FOUND':
      return 2;
    case 'E_IO':
    case 'E_HASH':
    case 'E_FORMAT':
    case 'E_DATA':
    case 'E_IMAGE':
    case 'E_UNSAFE_PICKLE':
      return 3;
    case 'E_STATE_DICT':
    case 'E_SHAPE':
    case 'E_DTYPE':
      return 4;
    default:
      return 1;
  }
}

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

const program = new Command('convzoo')
  .description('Classic image-classification CNNs on libtorch: list, inspect, predict, train, evaluate.')
  .version(version, '-V, --version', 'print the version of convzoo')
  .showHelpAfterError('(add --help for the options)')
  .showSuggestionAfterError()
  // Usage errors (unknown option, bad number) exit 2 like E_ARG; help and --version exit 0.
  .exitOverride((err) => {
    process.exit(err.exitCode === 0 ? 0 : 2);
  });

// 'web build' is the sub-command build of a group command web.
const groups = new Map<string, Command>();
const parentOf = (group: string): Command => {
  let g = groups.get(group);
  if (!g) groups.set(group, (g = program.command(group).description(commandGroups[group] ?? '')));
  return g;
};

for (const spec of commands) {
  const words = spec.name.split(' ');
  const parent = words.length > 1 ? parentOf(words[0]) : program;
  const cmd = parent.command(words[words.length - 1]).description(spec.description);
  for (const a of spec.args ?? []) cmd.argument(a.name, a.description);
  for (const o of spec.options ?? []) {
    const opt = new Option(o.flags, o.defaultText ? `${o.description} (default: ${o.defaultText})` : o.description);
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
      // A ConvzooError is the user's to fix and gets one line; anything else is a bug in convzoo, so
      // its stack is shown with CONVZOO_DEBUG=1.
      const msg = e instanceof Error ? e.message : String(e);
      process.stderr.write(`convzoo ${spec.name}: ${msg}\n`);
      if (!(e instanceof ConvzooError) && e instanceof Error && e.stack) {
        process.stderr.write(process.env.CONVZOO_DEBUG ? `${e.stack}\n` : '(an internal error: CONVZOO_DEBUG=1 shows where)\n');
      }
      process.exitCode = exitCodeFor(e);
    }
  });
}

// A closed pipe (`convzoo list | head`) ends the program quietly.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

program.parseAsync(process.argv);
