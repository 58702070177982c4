// The device a process computes on, as `--device` names it: `cpu`, `gpu:K` (the K-th GPU of this process:
// CUDA_VISIBLE_DEVICES for tensorflow-gpu, the K-th hardware adapter for webgpu) or `gpu:software` (a
// CPU-emulated WebGPU adapter such as Mesa's lavapipe: slow, for tests and CI; never chosen unless named).
import { OptionError } from "../errors.js";

export type Device =
  | { readonly kind: "cpu" }
  | { readonly kind: "gpu"; readonly index: number }
  | { readonly kind: "gpu-software" };

export const CPU_DEVICE: Device = { kind: "cpu" };

export const DEVICE_HELP =
  "cpu, gpu:K (the K-th GPU) or gpu:software (a software WebGPU adapter, e.g. lavapipe)";

/** `flag`: the flag's name for the error message (`device`, or `devices` for launch). */
export function parseDevice(text: string, flag = "device"): Device {
  if (text === "cpu") return CPU_DEVICE;
  if (text === "gpu:software") return { kind: "gpu-software" };
  const gpu = /^gpu:(\d+)$/.exec(text);
  if (gpu) return { kind: "gpu", index: Number(gpu[1]) };
  throw new OptionError(flag, `"${text}" is not ${DEVICE_HELP}`);
}

export function formatDevice(device: Device): string {
  switch (device.kind) {
    case "cpu":
      return "cpu";
    case "gpu":
      return `gpu:${device.index}`;
    case "gpu-software":
      return "gpu:software";
  }
}

/** `train` without --device: GPU 0 for a GPU backend named explicitly, else the CPU (auto included). */
export function defaultTrainDevice(backend: string): Device {
  return backend === "tensorflow-gpu" || backend === "webgpu" ? { kind: "gpu", index: 0 } : CPU_DEVICE;
}
