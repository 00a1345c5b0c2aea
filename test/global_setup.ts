// Before any test: bring dist/ up to date, so that the CLI and worker tests (which run dist/) never
// test a stale build, and the web page's test its current bundle. tsc is incremental, so an
// up-to-date tree costs a second or two; the page's bundle a fraction of one.
// Every test's temporary folder (os.tmpdir(), in the test processes and the CLIs they start) goes into
// one folder of this run, removed at the end: a run of the suite leaves nothing in /tmp
// (CONVZOO_KEEP_TEST_TMP=1 keeps it, for looking at a failure's files).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export default function setup(): () => void {
  const tsc = path.resolve('node_modules/typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { stdio: 'inherit' });
  execFileSync(process.execPath, [path.resolve('scripts/build-web.mjs'), '--quiet'], { stdio: 'inherit' });
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'convzoo-test-'));
  process.env.TMPDIR = tmp;
  return () => {
    if (process.env.CONVZOO_KEEP_TEST_TMP) console.log(`test files kept in ${tmp}`);
    else rmSync(tmp, { recursive: true, force: true });
  };
}
