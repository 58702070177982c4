// One backend on one device, tried in a process of its own: `imtrain devices` runs this script once per
// (backend, device) so that each backend starts clean (tfjs keeps one active backend per process,
// tensorflow-gpu reads CUDA_VISIBLE_DEVICES only when it loads, Dawn's instance keeps a process alive) and
// a native crash (libtensorflow, a GPU driver) is reported as that backend's failure, not the command's.
//
//   node backend-probe.js BACKEND DEVICE MATMUL_MAX_N   → one JSON line (BackendProbe) on stdout
import { parseDevice } from "../shared/backend/device.js";
import { selectBackend, type ConcreteBackend } from "../shared/backend/select.js";
import type { AdapterReport } from "../shared/backend/adapter.js";
import { measureMatMulCeiling } from "../shared/metrics/peak-flops.js";

export interface BackendProbe {
  readonly backend: ConcreteBackend;
  /** As --device names it. */
  readonly device: string;
  readonly runs: boolean;
  /** Why it does not run (the same words `train --backend B --device D` would fail with). */
  readonly error?: string;
  readonly adapter?: AdapterReport;
  /** The backend's 2-D matmul ceiling: the side of the square product measured, and GFLOP/s. */
  readonly matmul?: { readonly n: number; readonly gflops: number };
  /** Time to start the backend, and to measure it. */
  readonly startSeconds: number;
  readonly matmulSeconds?: number;
}

async function probe(backend: ConcreteBackend, device: string, maxN: number): Promise<BackendProbe> {
  const started = performance.now();
  const elapsed = (since: number) => (performance.now() - since) / 1000;
  let adapter: AdapterReport | undefined;
  try {
    adapter = (await selectBackend(backend, parseDevice(device))).adapter;
  } catch (error) {
    return { backend, device, runs: false, error: (error as Error).message, startSeconds: elapsed(started) };
  }
  const startSeconds = elapsed(started);
  const measuring = performance.now();
  const ceiling = await measureMatMulCeiling(maxN);
  return {
    backend,
    device,
    runs: true,
    ...(adapter ? { adapter } : {}),
    matmul: { n: ceiling.n, gflops: ceiling.flopsPerSecond / 1e9 },
    startSeconds,
    matmulSeconds: elapsed(measuring),
  };
}

const [backend = "", device = "", maxN = "8192"] = process.argv.slice(2);
const result = await probe(backend as ConcreteBackend, device, Number(maxN));
process.stdout.write(JSON.stringify(result) + "\n");
// Dawn's instance (webgpu) would keep the process alive.
process.exit(0);
