// Before any test: bring dist/ up to date, so that the CLI and worker tests (which run dist/) never
// test a stale build, and the web page's test its current bundle. tsc is incremental, so an
// up-to-date tree costs a second or two; the page's bundle a fraction of one.
import { execFileSync } from 'node:child_process';
import path from 'node:path';

export default function setup(): void {
  const tsc = path.resolve('node_modules/typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { stdio: 'inherit' });
  execFileSync(process.execPath, [path.resolve('scripts/build-web.mjs'), '--quiet'], { stdio: 'inherit' });
}
