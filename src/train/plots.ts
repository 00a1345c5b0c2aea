// Training curves and the confusion matrix, rendered by Vega-Lite to SVG and by sharp to PNG.
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import sharp from 'sharp';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

async function render(spec: TopLevelSpec, file: string): Promise<string[]> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  const svgPath = `${file}.svg`,
    pngPath = `${file}.png`;
  writeFileSync(svgPath, svg);
  await sharp(Buffer.from(svg), { density: 144 }).png().toFile(pngPath);
  return [svgPath, pngPath];
}

/** One epoch's numbers; testLoss / testAccuracy (older runs' valLoss / valAccuracy are read too). */
export interface EpochMetrics {
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  testLoss?: number;
  testAccuracy?: number;
  valLoss?: number;
  valAccuracy?: number;
}

/** Loss and accuracy per epoch, train and validation, side by side. Returns the files written. */
export async function plotCurves(history: EpochMetrics[], dir: string): Promise<string[]> {
  const rows = history.flatMap((h) => {
    const testLoss = h.testLoss ?? h.valLoss,
      testAccuracy = h.testAccuracy ?? h.valAccuracy;
    return [
      { epoch: h.epoch, metric: 'loss', split: 'train', value: h.trainLoss },
      { epoch: h.epoch, metric: 'accuracy', split: 'train', value: h.trainAccuracy },
      ...(testLoss !== undefined ? [{ epoch: h.epoch, metric: 'loss', split: 'test', value: testLoss }] : []),
      ...(testAccuracy !== undefined ? [{ epoch: h.epoch, metric: 'accuracy', split: 'test', value: testAccuracy }] : []),
    ];
  });
  return render(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      data: { values: rows },
      facet: { column: { field: 'metric', type: 'nominal', title: null, sort: ['loss', 'accuracy'] } },
      spec: {
        width: 320,
        height: 240,
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'epoch', type: 'quantitative', axis: { tickMinStep: 1 } },
          y: { field: 'value', type: 'quantitative', scale: { zero: false } },
          color: { field: 'split', type: 'nominal' },
        },
      },
      resolve: { scale: { y: 'independent' } },
    } as TopLevelSpec,
    path.join(dir, 'curves'),
  );
}

/** The confusion matrix as a heat map with counts. */
export async function plotConfusion(confusion: number[][], classes: string[], dir: string): Promise<string[]> {
  const rows = confusion.flatMap((row, t) => row.map((n, p) => ({ truth: classes[t], predicted: classes[p], count: n })));
  return render(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      data: { values: rows },
      width: 36 * classes.length,
      height: 36 * classes.length,
      encoding: {
        x: { field: 'predicted', type: 'nominal', sort: classes },
        y: { field: 'truth', type: 'nominal', sort: classes },
      },
      layer: [
        { mark: 'rect', encoding: { color: { field: 'count', type: 'quantitative', scale: { type: 'symlog', scheme: 'blues' } } } },
        {
          mark: { type: 'text', fontSize: 9 },
          encoding: {
            text: { field: 'count', type: 'quantitative' },
            color: { condition: { test: `datum.count > ${Math.max(1, Math.max(...confusion.flat()) / 3)}`, value: 'white' }, value: 'black' },
          },
        },
      ],
    } as TopLevelSpec,
    path.join(dir, 'confusion'),
  );
}
