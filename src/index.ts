// convzoo's public API: `import * as cz from 'convzoo'`.
export { ConvzooError, type ErrorCode } from './errors.js';
export { Tensor, type DType, type Device, type Shape, type TypedArray, DTYPE_BYTES, isFloatingDType, isHalfDType } from './tensor/tensor.js';
export * from './tensor/creation.js';
export { tidy, keep, memory, emptyCache, setAllocatorCacheLimit } from './tensor/scope.js';
export type { MemoryInfo } from './native.js';
export * as nn from './nn/index.js';
export * as F from './nn/functional.js';
export * as optim from './optim/index.js';
export * as data from './data/index.js';
export * as distributed from './distributed/index.js';
export * from './io/index.js';
export * from './models/index.js';
export { summary, formatSummary, type ModelSummary, type LayerRow } from './summary.js';
export {
  predict,
  predictStream,
  type Prediction,
  type PredictResult,
  type PredictOptions,
  type PredictModel,
  type AsyncClassifier,
} from './predict.js';
// onnxruntime as a backend: an ONNX classifier on a worker thread, with the forward/predict surface.
export { OnnxInferenceModel, ONNX_METADATA_KEYS, type OnnxInferenceOptions } from './onnx/runtime.js';
export {
  loadImage,
  evalTransformFor,
  imagenetCategories,
  checkTransform,
  preprocessPixels,
  decodeImage,
  type EvalTransform,
  type LoadImageOptions,
  type DecodedImage,
  type DecodeOptions,
} from './vision/preprocess.js';
export { ModelWorker, type ModelWorkerOptions, type WorkerTrainConfig } from './worker/model_worker.js';
// Training and evaluation: what the CLI's train, eval and demo commands call.
export { trainStep, type TrainStepOptions, type TrainStepResult } from './train/step.js';
export { makeOptimizer, makeScheduler, OPTIMIZERS, SCHEDULES, type OptimizerName, type ScheduleName, type EpochScheduler } from './train/recipe.js';
export { ModelEma } from './train/ema.js';
export { train, TRAIN_DEFAULTS, type TrainOptions, type TrainEvent, type TrainResult } from './train/trainer.js';
export { evaluate, tenCrops, type EvalResult, type EvaluateOptions } from './train/evaluate.js';
export { evaluateCommand, type EvalCommandOptions } from './train/eval_command.js';
export { saveCheckpoint, loadCheckpoint, restoreRng, CHECKPOINT_FORMAT, type Checkpoint, type CheckpointInfo } from './train/checkpoint.js';
export { demo, type DemoResult } from './train/demo.js';
export { plotCurves, plotConfusion } from './train/plots.js';
export { weightsDataConfig, pretrainedDataConfig, defaultDataConfig, runDataConfig, DEFAULT_CROP_PCT, type RunDataSpec } from './vision/data_config.js';
// ONNX: export for onnxruntime and other runtimes.
export {
  exportOnnx,
  exportOnnxModel,
  exportOnnxBytes,
  ONNX_OPSETS,
  type ExportOnnxOptions,
  type ExportOnnxFileOptions,
  type ExportOnnxResult,
  type Int8ExportOptions,
} from './onnx/export.js';
export { calibrationBatches, type CalibrationDataOptions } from './onnx/calibration.js';
export { quantizeOnnxModel, calibrateRanges, cpuHasVnni, type ValueRange, type QuantizeResult, type QuantizeOptions } from './onnx/quantize.js';
export { readOnnx, writeOnnx, encodeOnnx, type WriteOnnxOptions, type WriteOnnxResult } from './onnx/serialize.js';
export type { OnnxModel, OnnxGraph, OnnxNode, OnnxTensor, OnnxAttribute, OnnxValueInfo, OnnxDataType } from './onnx/ir.js';
// Serving: models behind HTTP (KServe v2 and /v1 routes) with dynamic batching.
export {
  createServer,
  serve,
  SERVE_DEFAULTS,
  HttpError,
  type ConvzooServer,
  type ServeOptions,
  type ServedModelSpec,
  type PressureLimits,
  type ClassifyResult,
  type ModelInfo,
  type ModelListing,
  type StageInfo,
} from './serve/server.js';
export { registerWebPage, type WebPageOptions } from './serve/web.js';
export { buildWebSite, type WebBuildResult } from './serve/web_build.js';
export { modelListing, modelInfo } from './serve/describe.js';
