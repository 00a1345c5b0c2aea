// Importing the family files registers their models.
import './resnet.js';
import './alexnet.js';
import './vgg.js';
import './googlenet.js';
import './mobilenet.js';
import './senet.js';
import './dpn.js';
import './densenet.js';
import './igc.js';
import './shufflenet.js';
import './resattnet.js';
import './nfnet.js';
import './efficientnet.js';
import './mnasnet.js';

export { ClassifierModel } from './base.js';
export type { OptimizeForInferenceOptions, InferenceOptimization, InferencePrecision } from './optimize.js';
export {
  registerModel,
  registerAlias,
  listAliases,
  listModels,
  modelMeta,
  getModelEntry,
  suggestIds,
  editDistance,
  IMAGENET_MEAN,
  IMAGENET_STD,
} from './registry.js';
export type { ModelMeta, ModelOptions, WeightsEntry, PaperRef, Interpolation, OptionsDeclaration, RegisteredModel } from './registry.js';
export { opt, COMMON_OPTIONS, checkOptions, type OptionSpec, type OptionTable } from './options.js';
export {
  buildModel,
  createModel,
  loadModel,
  checkModelOptions,
  resolveWeights,
  loadPretrained,
  adaptInputConv,
  type CreateModelOptions,
  type OnnxBackendOptions,
} from './builder.js';
export { downloadCached, convzooHome, sha256File, cachePathFor, evictCached, type DownloadOptions, type CacheLocationOptions } from './hub.js';
export * as resnet from './resnet.js';
export * as alexnet from './alexnet.js';
export * as vgg from './vgg.js';
export * as googlenet from './googlenet.js';
export * as mobilenet from './mobilenet.js';
export * as senet from './senet.js';
export * as dpn from './dpn.js';
export * as densenet from './densenet.js';
export * as igc from './igc.js';
export * as shufflenet from './shufflenet.js';
export * as resattnet from './resattnet.js';
export * as nfnet from './nfnet.js';
export * as efficientnet from './efficientnet.js';
export * as mnasnet from './mnasnet.js';
