import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { loadGraphModel, type GraphModel } from '@tensorflow/tfjs-converter';
import { loadLayersModel, type LayersModel } from '@tensorflow/tfjs-layers';
import type { LoadRequest, LoadResult, PredictResult, TensorPayload } from '../protocol.js';

/**
 * Worker mode's model: loaded from a URL or from artifacts a tf.io handler produced on the page,
 * on the requested backend (falling back to cpu, and saying so), run on typed arrays.
 */
export class WorkerModel {
  private constructor(
    private readonly model: LayersModel | GraphModel,
    readonly format: 'layers' | 'graph',
    readonly backend: string,
  ) {}

  static async load(request: LoadRequest): Promise<{ model: WorkerModel; result: LoadResult }> {
    const { backend, note } = await selectBackend(request.backend, request.wasmPaths);
    let format = request.format;
    let handler: string | tf.io.IOHandler;
    if (request.source.kind === 'url') {
      handler = request.source.url;
      if (format === 'auto') format = await sniffFormat(request.source.url);
    } else {
      const artifacts = request.source.artifacts as tf.io.ModelArtifacts;
      handler = tf.io.fromMemory(artifacts);
      if (format === 'auto') format = artifactsFormat(artifacts);
    }
    const model = format === 'graph' ? await loadGraphModel(handler) : await loadLayersModel(handler);
    return { model: new WorkerModel(model, format, backend), result: { backend, backendNote: note, format } };
  }

  /** Runs the model on one input; returns the first output's values and shape. */
  async predict(input: TensorPayload): Promise<PredictResult> {
    const x = tf.tensor(input.data, input.shape, input.dtype);
    let y: tf.Tensor | tf.Tensor[] | tf.NamedTensorMap | undefined;
    try {
      y = this.format === 'graph'
        ? await (this.model as GraphModel).executeAsync(x)
        : (this.model as LayersModel).predict(x);
      const first = firstTensor(y);
      const data = await first.data();
      // On cpu data() hands out the tensor's own buffer; the tensors are disposed below and
      // nothing else holds it, so it can be transferred without a copy.
      return { data: data as Float32Array | Int32Array | Uint8Array, shape: first.shape.slice() };
    } finally {
      x.dispose();
      if (y !== undefined) tf.dispose(y as tf.TensorContainer);
    }
  }
}

function firstTensor(y: tf.Tensor | tf.Tensor[] | tf.NamedTensorMap): tf.Tensor {
  if (y instanceof tf.Tensor) return y;
  if (Array.isArray(y)) return y[0];
  return Object.values(y)[0];
}

async function selectBackend(requested: string, wasmPaths?: string): Promise<{ backend: string; note: string | null }> {
  let note: string | null = null;
  if (requested === 'wasm' && wasmPaths) setWasmPaths(wasmPaths);
  if (requested === 'wasm' && !wasmPaths) note = 'wasm needs the wasmPaths option (where the .wasm files are served); using cpu';
  let ok = false;
  if (note === null) {
    try {
      // setBackend resolves false when the backend cannot start; tf.getBackend() would still
      // name it, so the resolved value is what counts (tfjs#6517).
      ok = await tf.setBackend(requested);
    } catch (e) {
      note = `${requested} failed to start (${(e as Error).message}); using cpu`;
    }
    if (!ok && note === null) note = `${requested} is not available here; using cpu`;
  }
  if (!ok) {
    if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend failed to start');
  }
  await tf.ready();
  return { backend: tf.getBackend(), note };
}

async function sniffFormat(url: string): Promise<'layers' | 'graph'> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`model ${url}: HTTP ${response.status}`);
  const json = await response.json();
  return artifactsFormat({ format: json.format, modelTopology: json.modelTopology } as tf.io.ModelArtifacts);
}

function artifactsFormat(a: tf.io.ModelArtifacts): 'layers' | 'graph' {
  if (a.format === 'graph-model') return 'graph';
  if (a.format === 'layers-model') return 'layers';
  const topology = a.modelTopology as { node?: unknown } | undefined;
  return topology && Array.isArray(topology.node) ? 'graph' : 'layers';
}
