// `imtrain devices`: what this node can compute on — the first thing to run on a new node. Each backend is
// started on each device it could use, in a process of its own (cli/backend-probe.ts) with a deadline,
// sequentially so the matmul figures do not compete; then one table, or one JSON object with --json.
import { execFile } from "node:child_process";
import { cpus, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Argv, CommandModule } from "yargs";
import { describeAdapter } from "../../shared/backend/adapter.js";
import {
  TENSORFLOW_GPU_LIBRARIES,
  WEBGPU_LIBRARIES,
  findLibraries,
  vulkanDrivers,
} from "../../shared/backend/gpu-libraries.js";
import { nvidiaCensus } from "../../shared/backend/nvidia-gpus.js";
import type { ConcreteBackend } from "../../shared/backend/select.js";
import { webGpuAdapters, type ListedAdapter } from "../../shared/backend/webgpu.js";
import { UserError } from "../../shared/errors.js";
import { inRange } from "../../shared/options.js";
import type { BackendProbe } from "../backend-probe.js";

interface DevicesFlags {
  json: boolean;
  probeTimeoutS: number;
  matmulMaxSize: number;
  expectGpu: boolean;
}

const PROBE_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), "../backend-probe.js");

/** Dawn's adapters, or why there are none (the package missing). */
async function listWebGpu(): Promise<{ adapters: ListedAdapter[]; error: string | undefined }> {
  try {
    return { adapters: await webGpuAdapters(), error: undefined };
  } catch (error) {
    return { adapters: [], error: (error as Error).message };
  }
}

/** Every (backend, device) worth trying here: GPU backends on each GPU found, or on gpu:0 to say why not. */
function probePlan(nvidiaGpuCount: number, adapters: readonly ListedAdapter[]): [ConcreteBackend, string][] {
  const cudaDevices = Array.from({ length: Math.max(1, nvidiaGpuCount) }, (_, k) => `gpu:${k}`);
  const hardware = adapters.filter((a) => !a.software).map((_, k) => `gpu:${k}`);
  const webgpuDevices = [
    ...(hardware.length ? hardware : ["gpu:0"]),
    ...(adapters.some((a) => a.software) ? ["gpu:software"] : []),
  ];
  return [
    ...cudaDevices.map((d): [ConcreteBackend, string] => ["tensorflow-gpu", d]),
    ...webgpuDevices.map((d): [ConcreteBackend, string] => ["webgpu", d]),
    ["tensorflow", "cpu"],
    ["wasm", "cpu"],
    ["cpu", "cpu"],
  ];
}

function runProbe(backend: ConcreteBackend, device: string, flags: DevicesFlags): Promise<BackendProbe> {
  const failed = (error: string): BackendProbe => ({ backend, device, runs: false, error, startSeconds: 0 });
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [PROBE_SCRIPT, backend, device, String(flags.matmulMaxSize)],
      { timeout: flags.probeTimeoutS * 1000, killSignal: "SIGKILL", maxBuffer: 16 * 2 ** 20 },
      (error, stdout, stderr) => {
        const line = stdout.trim().split("\n").pop() ?? "";
        if (!error && line.startsWith("{")) return resolve(JSON.parse(line) as BackendProbe);
        const killed = (error as { killed?: boolean } | null)?.killed === true;
        const tail = stderr.trim().split("\n").slice(-3).join(" | ");
        resolve(
          failed(
            killed
              ? `no answer within --probe-timeout-s ${flags.probeTimeoutS}`
              : `the probe process failed (${error?.message.split("\n")[0] ?? "no result"}): ${tail}`,
          ),
        );
      },
    );
  });
}

function gflops(probe: BackendProbe): string {
  return probe.matmul ? `${probe.matmul.gflops.toPrecision(3)} GFLOP/s (n=${probe.matmul.n})` : "-";
}

/** The fastest backend that runs: hardware GPUs first, then the CPU's, a software GPU last. */
function recommend(probes: readonly BackendProbe[]): BackendProbe | undefined {
  const rank = (p: BackendProbe) =>
    p.device.startsWith("gpu:") && p.device !== "gpu:software" ? 0 : p.device === "cpu" ? 1 : 2;
  return probes
    .filter((p) => p.runs)
    .sort((a, b) => rank(a) - rank(b) || (b.matmul?.gflops ?? 0) - (a.matmul?.gflops ?? 0))[0];
}

export const devicesCommand: CommandModule<object, DevicesFlags> = {
  command: "devices",
  describe:
    "What this node can compute on: every backend, whether it runs and why not, GPUs and their limits, the libraries GPU backends need, each backend's matmul GFLOP/s",
  builder: (yargs: Argv) =>
    yargs
      .option("json", { type: "boolean", default: false, describe: "Print one JSON object" })
      .option("probe-timeout-s", {
        type: "number",
        default: 180,
        describe:
          "Deadline for starting and measuring one backend on one device (a GPU's first start compiles kernels)",
      })
      .option("matmul-max-size", {
        type: "number",
        default: 8192,
        describe: "Largest square matmul measured (sizes double from 256 until one product takes 50 ms)",
      })
      .option("expect-gpu", {
        type: "boolean",
        default: false,
        describe: "Exit 2 unless a GPU backend runs on a hardware GPU (for a node's start-up check)",
      }) as unknown as Argv<DevicesFlags>,
  handler: async (argv) => {
    inRange("probe-timeout-s", argv.probeTimeoutS, 1, 3600);
    inRange("matmul-max-size", argv.matmulMaxSize, 256, 65_536, true);
    const nvidia = nvidiaCensus();
    const webgpu = await listWebGpu();
    const libraries = {
      tensorflowGpu: findLibraries(TENSORFLOW_GPU_LIBRARIES),
      vulkanLoader: findLibraries(WEBGPU_LIBRARIES),
      vulkanDrivers: vulkanDrivers(),
    };
    const probes: BackendProbe[] = [];
    for (const [backend, device] of probePlan(nvidia.gpus.length, webgpu.adapters)) {
      const probe = await runProbe(backend, device, argv);
      process.stderr.write(
        `devices: ${backend} on ${device}: ${probe.runs ? gflops(probe) : "does not run"}\n`,
      );
      probes.push(probe);
    }
    const host = {
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? "",
      memoryGiB: totalmem() / 2 ** 30,
    };
    const best = recommend(probes);
    if (argv.json) {
      const report = { host, nvidia, libraries, webgpuAdapters: webgpu, backends: probes, recommended: best };
      process.stdout.write(JSON.stringify(report) + "\n");
    } else {
      const found = libraries.tensorflowGpu.filter((l) => l.path !== undefined);
      const missing = libraries.tensorflowGpu.filter((l) => l.path === undefined).map((l) => l.soname);
      const lines = [
        `node ${host.node}, ${host.platform}, ${host.cpus} CPUs (${host.cpuModel}), ${host.memoryGiB.toFixed(1)} GiB`,
        `NVIDIA GPUs: ${nvidia.gpus.length ? nvidia.gpus.map((g) => `${g.index}: ${g.name} (driver ${g.driverVersion}, ${g.memoryMiB} MiB)`).join("; ") : `none (${nvidia.error})`}`,
        `tensorflow-gpu's CUDA 11.2 / cuDNN 8.1 libraries: ${found.length} of ${libraries.tensorflowGpu.length} found` +
          (missing.length ? `; missing ${missing.join(", ")}` : ""),
        `Vulkan loader: ${libraries.vulkanLoader[0]?.path ?? "libvulkan.so.1 not found"}; drivers: ${libraries.vulkanDrivers.map((d) => d.library).join(", ") || "none"}`,
        `WebGPU adapters (Dawn): ${webgpu.adapters.length ? webgpu.adapters.map((a) => `"${a.name}" (${a.api}${a.software ? ", software" : ""})`).join("; ") : `none${webgpu.error ? ` (${webgpu.error})` : ""}`}`,
        "",
        `${"backend".padEnd(15)} ${"device".padEnd(13)} ${"runs".padEnd(5)} ${"matmul".padEnd(26)} notes`,
        ...probes.map(
          (p) =>
            `${p.backend.padEnd(15)} ${p.device.padEnd(13)} ${(p.runs ? "yes" : "no").padEnd(5)} ${gflops(p).padEnd(26)} ${p.runs ? (p.adapter ? describeAdapter(p.adapter) : "") : (p.error ?? "")}`,
        ),
        "",
        best
          ? `fastest here: --backend ${best.backend} --device ${best.device}`
          : "no backend runs here: see the notes above",
      ];
      process.stdout.write(lines.join("\n") + "\n");
    }
    const hardwareGpu = probes.some((p) => p.runs && p.device !== "cpu" && p.device !== "gpu:software");
    if (argv.expectGpu && !hardwareGpu) {
      throw new UserError("--expect-gpu: no GPU backend runs on a hardware GPU here (see the table above)");
    }
  },
};
