// `imtrain devices` through the real CLI: every backend is started on each device it could use, and the
// report says which run, how fast their matmul is, and why the others do not — here: wasm and cpu run,
// the TensorFlow packages are not installed, and the software GPU (lavapipe, which CI installs) runs
// webgpu. nvidia-smi cannot run here, so one test puts a script that answers as nvidia-smi does on PATH
// to check that each GPU it lists is tried with tensorflow-gpu.
import assert from "node:assert/strict";
import { chmodSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { test } from "node:test";
import type { BackendProbe } from "../../cli/backend-probe.js";
import { TENSORFLOW_GPU_LIBRARIES } from "../../shared/backend/gpu-libraries.js";
import { runCli } from "../support/cli.js";
import { gpuCensus, installed, requireSoftwareGpu } from "../support/gpu.js";
import { tempDir } from "../support/tiny.js";

interface DevicesReport {
  readonly nvidia: { readonly gpus: readonly { index: number; name: string }[]; readonly error?: string };
  readonly libraries: { readonly tensorflowGpu: readonly { soname: string; path?: string }[] };
  readonly backends: readonly BackendProbe[];
  readonly recommended?: BackendProbe;
}

function probeOf(report: DevicesReport, backend: string, device: string): BackendProbe {
  const probe = report.backends.find((p) => p.backend === backend && p.device === device);
  assert.ok(probe, `no probe of ${backend} on ${device}: ${JSON.stringify(report.backends)}`);
  return probe;
}

test(
  "devices - each backend runs or says why; runnable ones report their matmul GFLOP/s",
  { timeout: 300_000 },
  async (t) => {
    const result = await runCli(["devices", "--json"]);
    assert.equal(result.status, 0, result.stderr.slice(-3000));
    const report = JSON.parse(result.stdout) as DevicesReport;
    for (const backend of ["wasm", "cpu"]) {
      const probe = probeOf(report, backend, "cpu");
      assert.equal(probe.runs, true, probe.error);
      assert.ok((probe.matmul?.gflops ?? 0) > 0.05, `${backend}: ${JSON.stringify(probe.matmul)}`);
      assert.ok((probe.matmul?.n ?? 0) >= 256);
    }
    // wasm's XNNPACK matmul is many times the plain-JavaScript cpu backend's: the figures are measured, not echoed.
    assert.ok(
      probeOf(report, "wasm", "cpu").matmul!.gflops > 3 * probeOf(report, "cpu", "cpu").matmul!.gflops,
    );
    for (const [backend, device, pkg] of [
      ["tensorflow", "cpu", "@tensorflow/tfjs-node"],
      ["tensorflow-gpu", "gpu:0", "@tensorflow/tfjs-node-gpu"],
    ] as const) {
      if (installed(pkg)) continue;
      const probe = probeOf(report, backend, device);
      assert.equal(probe.runs, false);
      assert.match(probe.error ?? "", new RegExp(`${pkg}.* is not installed`));
    }
    assert.deepEqual(
      report.libraries.tensorflowGpu.map((l) => l.soname),
      [...TENSORFLOW_GPU_LIBRARIES],
    );
    assert.match(result.stderr, /^devices: wasm on cpu: [\d.]+ GFLOP\/s/m, "progress, one line per probe");
    const hardwareGpus = gpuCensus().adapters.filter((a) => !a.software).length + report.nvidia.gpus.length;
    if (hardwareGpus === 0) assert.equal(report.recommended?.device, "cpu");
    if (!requireSoftwareGpu(t)) return;
    const software = probeOf(report, "webgpu", "gpu:software");
    assert.equal(software.runs, true, software.error);
    assert.equal(software.adapter?.software, true);
    assert.ok((software.adapter?.computeLimits["maxStorageBufferBindingSize"] ?? 0) > 2 ** 20);
    assert.ok((software.matmul?.gflops ?? 0) > 0);
    if (gpuCensus().adapters.every((a) => a.software)) {
      assert.match(probeOf(report, "webgpu", "gpu:0").error ?? "", /no GPU 0.*use --device gpu:software/);
    }
  },
);

test(
  "devices - tries tensorflow-gpu on each GPU nvidia-smi lists; --expect-gpu fails in one line without one",
  { timeout: 300_000 },
  async () => {
    const bin = tempDir("fake-nvidia-smi");
    const script = join(bin, "nvidia-smi");
    writeFileSync(
      script,
      "#!/bin/sh\necho '0, NVIDIA H100 80GB HBM3, 550.54.15, 81559'\necho '1, NVIDIA H100 80GB HBM3, 550.54.15, 81559'\n",
    );
    chmodSync(script, 0o755);
    const env = { ...process.env, PATH: `${bin}${delimiter}${process.env["PATH"] ?? ""}` };
    const result = await runCli(["devices", "--expect-gpu", "--matmul-max-size", "256"], env);
    assert.match(
      result.stdout,
      /^NVIDIA GPUs: 0: NVIDIA H100 80GB HBM3 \(driver 550\.54\.15, 81559 MiB\); 1: /m,
    );
    for (const device of ["gpu:0", "gpu:1"]) {
      assert.match(result.stdout, new RegExp(`^tensorflow-gpu +${device} +(no|yes) `, "m"));
    }
    if (installed("@tensorflow/tfjs-node-gpu")) return;
    // No backend can use those GPUs here: the table says so, and --expect-gpu ends with one line.
    assert.equal(result.status, 2, result.stderr.slice(-2000));
    const last = result.stderr.trim().split("\n").pop() ?? "";
    assert.match(last, /^imtrain: --expect-gpu: no GPU backend runs on a hardware GPU here/);
  },
);
