// The webgpu backend: tfjs-backend-webgpu on Dawn's Node bindings (the `webgpu` npm package), both optional
// dependencies. Dawn runs on Vulkan on Linux (Metal on macOS, D3D12 on Windows); with Mesa's lavapipe it
// runs on the CPU, which is how CI tests it.
//
// What tfjs-backend-webgpu does not do for us, done here:
// - it picks "the" adapter by power preference: we pick one explicitly, the K-th hardware adapter for
//   gpu:K and a software one only for gpu:software (Dawn offers lavapipe as an ordinary adapter);
// - it reports GPU errors nowhere (Dawn prints them): we record the first uncaptured error or device loss
//   and `throwIfWebGpuFailed` turns it into an exception after each step;
// - its synchronous reads need OffscreenCanvas, which Node lacks: `readSync` of GPU data fails with a
//   message that says so (training reads asynchronously).
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import * as tf from "@tensorflow/tfjs-core";
import { BackendError } from "../errors.js";
import type { AdapterReport } from "./adapter.js";
import type { Device } from "./device.js";
import { registerWebGpuFusedKernels } from "./webgpu-fused-kernels.js";

/** The parts of the WebGPU API used here (the `webgpu` package's types are optional, like the package). */
interface GpuLimits {
  readonly maxStorageBufferBindingSize: number;
  readonly maxBufferSize: number;
  readonly maxComputeWorkgroupStorageSize: number;
  readonly maxComputeWorkgroupsPerDimension: number;
  readonly maxComputeWorkgroupSizeX: number;
  readonly maxComputeInvocationsPerWorkgroup: number;
}
interface GpuAdapterInfo {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  readonly isFallbackAdapter?: boolean;
}
interface GpuDevice {
  readonly lost: Promise<{ readonly reason: string; readonly message: string }>;
  addEventListener(type: "uncapturederror", listener: (event: { error: { message: string } }) => void): void;
  destroy(): void;
}
interface GpuAdapter {
  readonly info: GpuAdapterInfo;
  readonly limits: GpuLimits;
  readonly features: ReadonlySet<string>;
  requestDevice(descriptor: {
    requiredLimits: Record<string, number>;
    requiredFeatures: string[];
  }): Promise<GpuDevice>;
}
interface Gpu {
  requestAdapter(): Promise<GpuAdapter | null>;
}
interface DawnModule {
  create(flags: string[]): Gpu;
  globals: object;
}
interface WebGpuBackendModule {
  WebGPUBackend: new (device: GpuDevice, adapterInfo: GpuAdapterInfo) => tf.KernelBackend;
}

/** Dawn's native API on this platform; its other backends (OpenGL) would list the same GPUs again. */
function nativeApi(): string {
  if (process.platform === "darwin") return "metal";
  if (process.platform === "win32") return "d3d12";
  return "vulkan";
}

const execFileAsync = promisify(execFile);

const SOFTWARE_NAME = /llvmpipe|lavapipe|swiftshader|softpipe|microsoft basic render/i;

export interface ListedAdapter {
  /** Dawn's backend: vulkan, metal, d3d12. */
  readonly api: string;
  readonly name: string;
  /** A CPU emulation (lavapipe, SwiftShader): chosen only for --device gpu:software. */
  readonly software: boolean;
}

async function importDawn(): Promise<DawnModule> {
  const packageName = "webgpu";
  try {
    return (await import(packageName)) as DawnModule;
  } catch (error) {
    const missing = (error as { code?: string }).code === "ERR_MODULE_NOT_FOUND";
    throw new BackendError(
      "webgpu",
      missing
        ? "the webgpu package (Dawn) is not installed (npm install webgpu)"
        : `the webgpu package (Dawn) failed to load: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/**
 * Every adapter Dawn sees on the native API, in its order. Dawn's Node bindings select adapters by a
 * substring of their name and, asked for a name that matches none, list them all in the error: that list
 * is the only enumeration they offer. It runs in a child process: creating adapters makes Dawn print
 * warnings of its own (lavapipe's limits), which would bury a one-line error here.
 */
async function listAdapters(api: string): Promise<ListedAdapter[]> {
  const dawnUrl = pathToFileURL(createRequire(import.meta.url).resolve("webgpu")).href;
  const script =
    `const { create } = await import(${JSON.stringify(dawnUrl)});` +
    'let message = "";' +
    `try { await create(["backend=${api}", "adapter=imtrain: list the adapters"]).requestAdapter(); }` +
    "catch (error) { message = String(error?.message ?? error); }" +
    "process.stdout.write(JSON.stringify(message));" +
    "process.exit(0);";
  let message: string;
  try {
    const { stdout } = await execFileAsync(process.execPath, ["--input-type=module", "-e", script], {
      timeout: 60_000,
    });
    message = JSON.parse(stdout) as string;
  } catch (error) {
    throw new BackendError("webgpu", `listing Dawn's adapters failed: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const listed = [...message.matchAll(/\* backend: '([^']*)', name: '([^']*)'/g)];
  return listed.map(([, listedApi = "", name = ""]) => ({
    api: listedApi,
    name,
    software: SOFTWARE_NAME.test(name),
  }));
}

/** The adapters Dawn sees on this platform's native API; throws a BackendError if the package is missing. */
export async function webGpuAdapters(): Promise<ListedAdapter[]> {
  await importDawn();
  return listAdapters(nativeApi());
}

/** The name of the adapter `device` asks for, or a BackendError that says what there is instead. */
function chooseAdapter(device: Device, adapters: readonly ListedAdapter[], api: string): string {
  const names = adapters.map((a) => `"${a.name}"`).join(", ") || "none";
  if (device.kind === "gpu-software") {
    const software = adapters.find((a) => a.software);
    if (software === undefined) {
      throw new BackendError(
        "webgpu",
        `no software ${api} adapter for gpu:software (adapters: ${names}); on Debian 12 install Mesa 25's ` +
          "lavapipe: apt-get install -t bookworm-backports mesa-vulkan-drivers",
      );
    }
    return software.name;
  }
  if (device.kind !== "gpu")
    throw new BackendError("webgpu", "needs a GPU device: use --device gpu:K or gpu:software");
  const hardware = adapters.filter((a) => !a.software);
  const chosen = hardware[device.index];
  if (chosen === undefined) {
    const only =
      adapters.length > hardware.length
        ? ` (only a software adapter: ${names}; use --device gpu:software to run on it)`
        : ` (adapters: ${names})`;
    throw new BackendError(
      "webgpu",
      `no GPU ${device.index}: Dawn sees ${hardware.length} hardware ${api} adapter(s)${only}`,
    );
  }
  // Dawn takes the first adapter whose name contains the one asked for.
  const first = adapters.findIndex((a) => a.name.includes(chosen.name));
  if (adapters[first] !== chosen) {
    throw new BackendError(
      "webgpu",
      `GPU ${device.index} ("${chosen.name}") cannot be told apart from an earlier adapter by name, the only way ` +
        "Dawn's Node bindings select one: give this process one GPU (NVIDIA_VISIBLE_DEVICES, or one GPU per " +
        "container) and use --device gpu:0",
    );
  }
  return chosen.name;
}

let failure: string | undefined;
let activeDevice: GpuDevice | undefined;

/** Throws the first GPU error or device loss since the backend started, if any. */
export function throwIfWebGpuFailed(): void {
  if (failure !== undefined) throw new BackendError("webgpu", failure);
}

/** Makes tfjs's `webgpu` backend run on the adapter `device` names; returns what it runs on. */
export async function activateWebGpu(device: Device): Promise<AdapterReport> {
  const dawn = await importDawn();
  const api = nativeApi();
  const adapters = await listAdapters(api);
  const name = chooseAdapter(device, adapters, api);
  const gpu = dawn.create([`backend=${api}`, `adapter=${name}`]);
  const adapter = await gpu.requestAdapter();
  if (adapter === null) throw new BackendError("webgpu", `Dawn returned no adapter for "${name}"`);
  const software = adapter.info.isFallbackAdapter === true || adapter.info.architecture === "software";
  if (software !== (device.kind === "gpu-software")) {
    throw new BackendError(
      "webgpu",
      `adapter "${name}" is ${software ? "a software" : "a hardware"} adapter` +
        (software
          ? ": use --device gpu:software to run on it"
          : ", not the software one gpu:software asks for"),
    );
  }
  const limits = adapter.limits;
  // What tfjs asks the device for (its own backend factory requests the same): the adapter's best.
  const computeLimits = {
    maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
    maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
    maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
    maxBufferSize: limits.maxBufferSize,
    maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
    maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
  };
  // Timestamp queries, where the adapter has them, give tf.profile (and the bench's kernels figure) each
  // kernel's GPU time; tfjs uses them only while profiling.
  const requiredFeatures = adapter.features.has("timestamp-query") ? ["timestamp-query"] : [];
  const gpuDevice = await adapter.requestDevice({ requiredLimits: computeLimits, requiredFeatures });
  failure = undefined;
  activeDevice = gpuDevice;
  gpuDevice.addEventListener("uncapturederror", (event) => {
    // Dawn's messages go on with indented " - While …" lines: the first says what went wrong.
    failure ??= `GPU error: ${event.error.message.split("\n")[0] ?? ""}`;
  });
  void gpuDevice.lost.then((info) => {
    if (activeDevice === gpuDevice) failure ??= `GPU device lost (${info.reason}): ${info.message}`;
  });

  // tfjs-backend-webgpu looks for navigator.gpu when it loads (and registers a factory of its own, which
  // would pick an adapter by power preference: ours replaces it).
  Object.assign(globalThis, dawn.globals);
  installNavigatorGpu(gpu);
  const backendModule = await importTfjsWebGpu();
  if (tf.findBackendFactory("webgpu") !== null) tf.removeBackend("webgpu");
  tf.registerBackend("webgpu", () => nodeWebGpuBackend(backendModule, gpuDevice, adapter.info), 0);
  if (!(await tf.setBackend("webgpu"))) throw new BackendError("webgpu", "tfjs could not initialise webgpu");
  await tf.ready();
  registerWebGpuFusedKernels();
  return {
    name,
    description: adapter.info.description,
    vendor: adapter.info.vendor,
    api,
    software,
    maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
    maxBufferSize: limits.maxBufferSize,
    computeLimits,
  };
}

/** Sets `navigator.gpu`: on Node's own `navigator` (Node 21+), else on a new one (Node 20 has none). */
function installNavigatorGpu(gpu: Gpu): void {
  const existing = (globalThis as { navigator?: object }).navigator;
  if (existing !== undefined && Object.isExtensible(existing)) {
    Object.defineProperty(existing, "gpu", { value: gpu, configurable: true, writable: true });
    return;
  }
  Object.defineProperty(globalThis, "navigator", { value: { gpu }, configurable: true, writable: true });
}

async function importTfjsWebGpu(): Promise<WebGpuBackendModule> {
  const packageName = "@tensorflow/tfjs-backend-webgpu";
  try {
    return (await import(packageName)) as WebGpuBackendModule;
  } catch (error) {
    const missing = (error as { code?: string }).code === "ERR_MODULE_NOT_FOUND";
    throw new BackendError(
      "webgpu",
      missing
        ? `${packageName} is not installed (npm install ${packageName}@${tf.version_core})`
        : `${packageName} failed to load: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/** tfjs's WebGPU backend, with a synchronous read of GPU data that fails clearly instead of on OffscreenCanvas. */
function nodeWebGpuBackend(
  module: WebGpuBackendModule,
  device: GpuDevice,
  info: GpuAdapterInfo,
): tf.KernelBackend {
  const backend = new module.WebGPUBackend(device, info);
  const readSync = backend.readSync.bind(backend);
  backend.readSync = (dataId: object) => {
    try {
      return readSync(dataId);
    } catch (error) {
      if (!(error instanceof ReferenceError)) throw error;
      throw new BackendError(
        "webgpu",
        "a synchronous read (dataSync) of GPU data, which WebGPU under Node cannot do: this code path must read with await data()",
        { cause: error },
      );
    }
  };
  return backend;
}
