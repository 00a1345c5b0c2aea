// The architecture diagram: the stages of ./stages.ts as boxes joined by arrows, each with its output
// shape; a bar under the name shows its share of parameters.
import { diagramStages } from './stages.js';
import type { ModelInfo } from './types.js';

const SVG = 'http://www.w3.org/2000/svg';
const BOX_W = 210,
  BOX_H = 42,
  GAP = 16,
  PAD = 10;

function el<K extends keyof SVGElementTagNameMap>(name: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

export const shapeText = (shape: number[]): string => shape.join(' × ');

/** An SVG of `info.stages`, top to bottom, input first. */
export function stageDiagram(info: ModelInfo): SVGSVGElement {
  const stages = diagramStages(info);
  const boxes = [{ name: 'input', outputShape: info.inputSize, params: 0, macs: 0 }, ...stages];
  const height = PAD * 2 + boxes.length * BOX_H + (boxes.length - 1) * GAP;
  const svg = el('svg', { viewBox: `0 0 ${BOX_W + PAD * 2} ${height}`, width: BOX_W + PAD * 2, height, role: 'img', class: 'diagram' });
  svg.append(el('title', {}, `${info.id}: ${stages.length} stages from input ${shapeText(info.inputSize)}`));
  const defs = el('defs', {});
  const marker = el('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto' });
  marker.append(el('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' }));
  defs.append(marker);
  svg.append(defs);
  const total = Math.max(1, info.params);
  boxes.forEach((s, i) => {
    const y = PAD + i * (BOX_H + GAP);
    const g = el('g', { class: i === 0 ? 'stage input' : 'stage', 'data-stage': s.name });
    g.append(el('rect', { x: PAD, y, width: BOX_W, height: BOX_H, rx: 6 }));
    g.append(el('text', { x: PAD + 10, y: y + 19, class: 'stage-name' }, s.name));
    g.append(el('text', { x: PAD + BOX_W - 10, y: y + 19, class: 'stage-shape', 'text-anchor': 'end' }, shapeText(s.outputShape)));
    if (s.params > 0) g.append(el('rect', { x: PAD + 10, y: y + 30, width: Math.max(1, ((BOX_W - 20) * s.params) / total), height: 6, class: 'stage-params' }));
    const tip = `${s.name}: output ${shapeText(s.outputShape)}${i ? `, ${s.params.toLocaleString('en-US')} parameters, ${s.macs.toLocaleString('en-US')} MACs` : ''}`;
    g.append(el('title', {}, tip));
    svg.append(g);
    if (i > 0) svg.append(el('line', { x1: PAD + BOX_W / 2, y1: y - GAP, x2: PAD + BOX_W / 2, y2: y - 2, class: 'edge', 'marker-end': 'url(#arrow)' }));
  });
  return svg;
}
