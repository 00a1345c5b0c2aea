// The onnx package's checker as the reference for the files convzoo writes: runs tools/onnx_check.py with
// Debian's python3 (python3-onnx). Without it the ONNX tests fail and say what to install: a check that
// silently skips proves nothing.
import { execFileSync } from 'node:child_process';
import { PY } from './tv_reference.js';

const SCRIPT = new URL('../../tools/onnx_check.py', import.meta.url).pathname;

export interface OnnxCheckResult {
  path: string;
  /** check_model(full_check=True) and strict shape inference both passed. */
  ok: boolean;
  /** The first failure's message. */
  error?: string;
  irVersion?: number;
  /** The default domain's opset version. */
  opset?: number;
  externalData?: boolean;
  /** Each graph output's shape as shape inference derives it: number, symbolic name, or null if unknown. */
  inferredOutputShapes?: Record<string, (number | string | null)[] | null>;
}

/** Checks one ONNX file with onnx.checker.check_model(full_check=True) and strict shape inference. */
export function onnxCheck(path: string, python = PY): OnnxCheckResult {
  let stdout: string;
  try {
    stdout = execFileSync(python, [SCRIPT, path], { encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { status?: number; stderr?: string; message: string };
    const why = err.status === 3 ? (err.stderr ?? '').trim() : `${python} ${SCRIPT} failed (${err.message})`;
    throw new Error(`The ONNX checks need ${python} with the onnx package (Debian/Ubuntu: apt install python3-onnx): ${why}`);
  }
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as OnnxCheckResult;
}

/** Runs a Python snippet with the onnx package imported as `onnx` and returns its stdout parsed as JSON. */
export function pythonOnnxJson<T>(code: string, args: string[] = [], python = PY): T {
  const stdout = execFileSync(python, ['-c', `import json, sys, onnx\n${code}`, ...args], { encoding: 'utf8', timeout: 120_000 });
  return JSON.parse(stdout) as T;
}
