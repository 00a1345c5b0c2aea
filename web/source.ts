// Where the page gets its models: a convzoo server (its /v1 API), or the files of a static build
// (`convzoo web build DIR`: config.json, models/{name}/info.json and model.onnx). All URLs are
// relative, so either works under any path prefix.
import type { ClassifyResult, ModelInfo, ModelListing } from './types.js';

export interface ModelSource {
  /** 'server' when the page can classify through the API; 'static' when only in the browser. */
  kind: 'server' | 'static';
  models: ModelListing[];
  info(name: string): Promise<ModelInfo>;
  onnxUrl(name: string): string;
  classify?(name: string, image: Blob, topk: number): Promise<ClassifyResult>;
}

/** fetch that fails with the server's own error message (its JSON `error`/`message`) when not 2xx. */
async function fetchOk(url: string, init?: RequestInit): Promise<Response> {
  const res = await fetch(url, init);
  if (res.ok) return res;
  let detail = res.statusText;
  try {
    const body = (await res.json()) as { error?: string; message?: string };
    detail = body.error ?? body.message ?? detail;
  } catch {
    // not JSON: the status text says enough
  }
  throw new Error(`${url}: ${res.status} ${detail}`);
}

const enc = encodeURIComponent;

/** The static build's config.json if there is one, else the server's API. */
export async function openSource(): Promise<ModelSource> {
  const config = await fetch('config.json').catch(() => null);
  if (config?.ok && config.headers.get('content-type')?.includes('json')) {
    const { models } = (await config.json()) as { models: ModelListing[] };
    return {
      kind: 'static',
      models,
      info: async (name) => (await fetchOk(`models/${enc(name)}/info.json`)).json(),
      onnxUrl: (name) => `models/${enc(name)}/model.onnx`,
    };
  }
  const { models } = (await (await fetchOk('v1/models')).json()) as { models: ModelListing[] };
  return {
    kind: 'server',
    models,
    info: async (name) => (await fetchOk(`v1/models/${enc(name)}/info`)).json(),
    onnxUrl: (name) => `v1/models/${enc(name)}/model.onnx`,
    async classify(name, image, topk) {
      const res = await fetchOk(`v1/models/${enc(name)}/classify?topk=${topk}`, {
        method: 'POST',
        headers: { 'Content-Type': image.type || 'application/octet-stream' },
        body: image,
      });
      const { results } = (await res.json()) as { results: ClassifyResult[] };
      return results[0];
    },
  };
}
