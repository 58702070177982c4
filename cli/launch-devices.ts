// Which devices launch's local workers run on, one worker per device (one process per GPU, like torchrun):
//   cpu, gpu:software     --workers workers, all on it
//   gpu                   --workers workers, worker i on gpu:i
//   all                   one worker per GPU of this node: nvidia-smi's, else Dawn's hardware adapters
//   gpu:0,gpu:2 | cpu,cpu one worker per device listed
// Each worker names its GPU as gpu:K; tensorflow-gpu then sets CUDA_VISIBLE_DEVICES=K in that worker, so it
// sees only its own GPU (shared/backend/select.ts).
import { formatDevice, parseDevice } from "../shared/backend/device.js";
import { nvidiaCensus } from "../shared/backend/nvidia-gpus.js";
import { webGpuAdapters } from "../shared/backend/webgpu.js";
import { OptionError } from "../shared/errors.js";

export const LAUNCH_DEVICES_HELP =
  "cpu or gpu:software: --workers workers on it; gpu: worker i on gpu:i; all: one worker per GPU of this node; or a list, one worker each (gpu:0,gpu:1 or cpu,cpu)";

/** The GPUs of this node: nvidia-smi's, else Dawn's hardware adapters; or why there are none. */
export async function gpusOfThisNode(): Promise<{ count: number; why: string }> {
  const nvidia = nvidiaCensus();
  if (nvidia.gpus.length > 0) return { count: nvidia.gpus.length, why: "" };
  try {
    const hardware = (await webGpuAdapters()).filter((a) => !a.software).length;
    return { count: hardware, why: `${nvidia.error}; Dawn sees no hardware adapter` };
  } catch (error) {
    return { count: 0, why: `${nvidia.error}; ${(error as Error).message}` };
  }
}

/** One device per local worker; `workers` is --workers (the job's size), needed by the repeating forms. */
export async function localWorkerDevices(
  text: string,
  workers: number | undefined,
  gpus: () => Promise<{ count: number; why: string }> = gpusOfThisNode,
): Promise<string[]> {
  const repeated = (device: (i: number) => string) => {
    if (workers === undefined)
      throw new OptionError("workers", `required with --devices ${text} (or list one device per worker)`);
    return Array.from({ length: workers }, (_, i) => device(i));
  };
  if (text === "cpu" || text === "gpu:software") return repeated(() => text);
  if (text === "gpu") return repeated((i) => `gpu:${i}`);
  if (text === "all") {
    const { count, why } = await gpus();
    if (count === 0) throw new OptionError("devices", `all: this node has no GPU (${why})`);
    return Array.from({ length: count }, (_, i) => `gpu:${i}`);
  }
  const devices = text.split(",").map((item) => formatDevice(parseDevice(item.trim(), "devices")));
  const twice = devices.find(
    (d, i) => d.startsWith("gpu:") && d !== "gpu:software" && devices.indexOf(d) !== i,
  );
  if (twice !== undefined)
    throw new OptionError(
      "devices",
      `${twice} is listed twice: one worker per GPU (list gpu:software or cpu to repeat)`,
    );
  return devices;
}
