// The web page at `/`: the built files of dist/web (see scripts/build-web.mjs), one route per file.
import { existsSync } from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { WEB_DIST } from './web_build.js';

export interface WebPageOptions {
  /** The built page's folder (default: the package's dist/web). */
  root?: string;
}

/**
 * Serves the page at `/` and its assets (app.js, style.css, the onnxruntime wasm binary) when it is
 * built; otherwise logs a warning and serves nothing, so the API still works from a bare tsc build.
 */
export async function registerWebPage(app: FastifyInstance, opts: WebPageOptions = {}): Promise<void> {
  const root = opts.root ?? WEB_DIST;
  if (!existsSync(path.join(root, 'index.html'))) {
    app.log.warn(`web page not built (no ${path.join(root, 'index.html')}): run npm run build; serving the API only`);
    return;
  }
  await app.register(fastifyStatic, {
    root,
    prefix: '/',
    // Routes for the files present now, not a catch-all: the API's own 404s stay the API's.
    wildcard: false,
    index: ['index.html'],
    decorateReply: false,
    // Unhashed names: revalidate with the ETag rather than cache blindly.
    cacheControl: true,
    maxAge: 0,
  });
}
