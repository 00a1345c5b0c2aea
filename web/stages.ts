// Which boxes the architecture diagram draws: the model's stages (its top-level children, in forward
// order), except that torchvision-style models, with only `features` and `classifier` at the top, get
// their parts drawn instead (from the layer table), so that the diagram shows the network's
// progression. No DOM here: the tests run it in Node.
import type { ModelInfo } from './types.js';

export type Stage = ModelInfo['stages'][number];

/** Top-level stages fewer than this get their parts drawn. */
const FEW_STAGES = 4;
/** ... when a stage has at most this many parts (VGG's 31-layer `features` stays one box). */
const MAX_PARTS = 20;

/** The boxes to draw: `info.stages`, or for a model with few of them, each stage's parts where it has several. */
export function diagramStages(info: ModelInfo): Stage[] {
  if (info.stages.length >= FEW_STAGES) return info.stages;
  const out: Stage[] = [];
  for (const stage of info.stages) {
    const parts: Stage[] = [];
    for (const layer of info.layers) {
      const path = layer.name.split('.');
      if (path[0] !== stage.name || path.length < 2) continue;
      const name = `${path[0]}.${path[1]}`;
      const last = parts[parts.length - 1];
      if (last?.name === name) {
        last.outputShape = layer.outputShape;
        last.params += layer.params;
        last.macs += layer.macs;
      } else parts.push({ name, outputShape: layer.outputShape, params: layer.params, macs: layer.macs });
    }
    if (parts.length >= 2 && parts.length <= MAX_PARTS) out.push(...parts);
    else out.push(stage);
  }
  return out;
}
