#!/usr/bin/env node
// Locates libtorch for the native build, in this order: $LIBTORCH, a pip-installed torch, the system
// (Debian's libtorch-dev). binding.gyp calls it with one argument (include | libdir | abi | source);
// `--check` prints what was found, or what to install, and fails when nothing is usable.
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';

function candidate(source, root, include, libdir, abi) {
  return { source, root, include, libdir, abi };
}

function fromEnv() {
  const root = process.env.LIBTORCH;
  if (!root) return null;
  const include = [path.join(root, 'include'), path.join(root, 'include/torch/csrc/api/include')];
  const libdir = path.join(root, 'lib');
  if (!existsSync(path.join(include[0], 'ATen/ATen.h')) || !existsSync(libdir)) {
    throw new Error(`LIBTORCH=${root} does not look like libtorch: expected include/ATen/ATen.h and lib/ inside it`);
  }
  return candidate('LIBTORCH', root, include, libdir, null);
}

function fromPip() {
  for (const py of [process.env.PYTHON, 'python3', '/usr/bin/python3'].filter(Boolean)) {
    try {
      const out = execFileSync(
        py,
        ['-c', 'import torch,os,json;d=os.path.dirname(torch.__file__);' + 'print(json.dumps([d, bool(torch._C._GLIBCXX_USE_CXX11_ABI)]))'],
        { stdio: ['ignore', 'pipe', 'ignore'] },
      )
        .toString()
        .trim();
      const [root, abi] = JSON.parse(out);
      if (root.startsWith('/usr/lib/python3/dist-packages/')) continue; // Debian's python3-torch: the system install

      const inc = path.join(root, 'include');
      // Debian's python3-torch has no headers of its own: it is found as the system install below.
      const lib = path.join(root, 'lib');
      if (!existsSync(path.join(inc, 'ATen/ATen.h')) || !existsSync(path.join(lib, 'libtorch_cpu.so'))) continue;
      return candidate(`pip torch (${py})`, root, [inc, path.join(inc, 'torch/csrc/api/include')], path.join(root, 'lib'), abi ? 1 : 0);
    } catch {
      /* this python has no torch */
    }
  }
  return null;
}

function fromSystem() {
  const libdirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib'];
  for (const prefix of ['/usr', '/usr/local']) {
    const inc = path.join(prefix, 'include');
    if (!existsSync(path.join(inc, 'ATen/ATen.h'))) continue;
    const libdir = libdirs.find((d) => existsSync(path.join(d, 'libtorch_cpu.so')) || existsSync(path.join(d, 'libtorch.so')));
    if (libdir) return candidate('system', prefix, [inc, path.join(inc, 'torch/csrc/api/include')], libdir, null);
  }
  return null;
}

/**
 * Whether distributed training can be built: c10d's gloo process group in the libtorch headers, and gloo's
 * own headers (Debian: libgloo-dev), beside them or in the system's include folders.
 */
export function hasC10d(lt) {
  const pg = lt.include.some((d) => existsSync(path.join(d, 'torch/csrc/distributed/c10d/ProcessGroupGloo.hpp')));
  const gloo = [...lt.include, '/usr/include', '/usr/local/include'].some((d) => existsSync(path.join(d, 'gloo/algorithm.h')));
  return pg && gloo;
}

export function findLibtorch() {
  const found = fromEnv() ?? fromPip() ?? fromSystem();
  if (!found) {
    throw new Error(
      'convzoo: libtorch not found. Tried, in order: the LIBTORCH environment variable (unset), a pip-installed ' +
        'torch for python3 (none with headers), and the system (/usr/include/ATen/ATen.h). Install one of:\n' +
        '  Debian/Ubuntu: apt-get install libtorch-dev libopenblas0-openmp\n' +
        '  pip:           pip install torch\n' +
        '  or download libtorch from pytorch.org and set LIBTORCH=/path/to/libtorch',
    );
  }
  return found;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = process.argv[2] ?? '--check';
  try {
    const lt = findLibtorch();
    if (arg === 'include') console.log(lt.include.join(' '));
    else if (arg === 'libdir') console.log(lt.libdir);
    else if (arg === 'abi') console.log(lt.abi === null ? '' : `-D_GLIBCXX_USE_CXX11_ABI=${lt.abi}`);
    else if (arg === 'source') console.log(lt.source);
    else if (arg === 'c10d') console.log(hasC10d(lt) ? '-DCZ_WITH_C10D -DUSE_C10D_GLOO' : '');
    else
      console.error(
        `convzoo: building against libtorch from ${lt.source}: ${lt.root}${hasC10d(lt) ? '' : ' (no c10d/gloo headers: distributed training unavailable)'}`,
      );
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
