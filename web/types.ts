// The shapes of the server's JSON (GET /v1/models, GET /v1/models/{name}/info), which a static build
// writes as config.json and models/{name}/info.json. They mirror src/serve/describe.ts, the server's
// side of the contract: that module imports the library (Node), which the page's bundle must not.
import type { EvalTransform, Prediction } from './preprocess.js';

export interface ModelListing {
  name: string;
  id: string;
  backend: string;
  numClasses: number;
  inputSize: number[];
  transform: EvalTransform;
  labels: string[];
  paper: { title: string; year: number };
}

export interface LayerInfo {
  name: string;
  type: string;
  outputShape: number[];
  params: number;
  macs: number;
}

export interface ModelInfo {
  name: string;
  id: string;
  paper: { title: string; year: number };
  params: number;
  macs: number;
  inputSize: number[];
  layers: LayerInfo[];
  stages: { name: string; outputShape: number[]; params: number; macs: number }[];
}

/** One image's answer of POST /v1/models/{name}/classify. */
export type ClassifyResult = { filename: string | null; predictions: Prediction[] } | { filename: string | null; error: string; code: string };
