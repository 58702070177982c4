// npm run gpu-check: what it measures and its flags are in USAGE below (`--help` prints it).
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { reportAndExit } from "../cli/exit-on-error.js";
import { parseBenchArgs } from "./args.js";
import type { BackendProbe } from "../cli/backend-probe.js";
import { readMetricsLog } from "../report/metrics-log.js";
import { OptionError } from "../shared/errors.js";
import { emitLine, figure } from "./figure.js";

// A bad flag (an OptionError) is one line naming it, as in the CLI; anything else is a bug with its trace.
process.on("uncaughtException", reportAndExit);

const HERE = dirname(fileURLToPath(import.meta.url));
const CLI = join(HERE, "../cli/main.js");
const BENCH = join(HERE, "main.js");
const RELATIVE_TOLERANCE = 1e-3;

const USAGE = `
npm run gpu-check: what a person runs on a machine with GPUs. One JSON line per figure on stdout,
progress on stderr; exit 0 if every check passed, 1 if one failed or no GPU backend runs.
  devices      \`imtrain devices --json\`: what runs here, and why the rest does not
  agreement    per GPU backend that runs: a --steps-step \`imtrain train\` (tiny preset, synthetic data)
               whose per-step losses must match wasm's within 1e-3 relative
  matmul       per GPU backend: its 2-D matmul ceiling in TFLOP/s (measured by devices)
  train_step, peak_memory   per GPU backend: \`npm run bench\` on the --model preset (default gpt2, with
               GPT-2's 50,257-token vocabulary) at --batch × --seq tokens
Flags: --software (also check the software adapter, gpu:software: how CI runs this), --model gpt2,
--batch 4, --seq 1024, --steps 20, --timeout-s 1800 (each child process's deadline).
`;

const args = parseBenchArgs(
  {
    software: { type: "boolean", default: false },
    model: { type: "string", default: "gpt2" },
    batch: { type: "string", default: "4" },
    seq: { type: "string", default: "1024" },
    steps: { type: "string", default: "20" },
    "timeout-s": { type: "string", default: "1800" },
  },
  USAGE,
);
for (const flag of ["batch", "seq", "steps", "timeout-s"] as const) {
  const value = Number(args[flag]);
  if (!Number.isSafeInteger(value) || value < 1)
    throw new OptionError(flag, `"${args[flag]}" is not a positive integer`);
}
const timeoutMs = Number(args["timeout-s"]) * 1000;
const work = mkdtempSync(join(tmpdir(), "imtrain-gpu-check-"));
let failed = false;

function say(line: string): void {
  process.stderr.write(`gpu-check: ${line}\n`);
}

/** Runs node `script args…` to completion within the deadline; its stdout, or an Error saying why not. */
function run(script: string, scriptArgs: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [script, ...scriptArgs],
      { timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 64 * 2 ** 20 },
      (error, stdout, stderr) => {
        if (!error) return resolve(stdout);
        const why = error.killed ? `no result within --timeout-s ${args["timeout-s"]}` : error.message;
        const tail = stderr.trim().split("\n").slice(-5).join("\n");
        reject(
          new Error(`${script.split("/").pop()} ${scriptArgs.join(" ")}: ${why.split("\n")[0]}\n${tail}`),
        );
      },
    );
  });
}

async function train(name: string, backend: string, device: string, data: string): Promise<number[]> {
  const out = join(work, name);
  await run(CLI, [
    "train",
    ...["--data", data, "--model", "tiny", "--steps", args.steps ?? "20", "--batch-size", "8"],
    ...["--micro-batch-size", "4", "--lr", "3e-3", "--warmup-steps", "3", "--seed", "3"],
    ...["--eval-fraction", "0", "--backend", backend, "--device", device, "--out", out],
  ]);
  return readMetricsLog(join(out, "metrics.jsonl")).steps.map((line) => line.train_loss ?? NaN);
}

async function checkAgreement(probe: BackendProbe, data: string, reference: number[]): Promise<void> {
  say(`${args.steps} steps of train on ${probe.backend} ${probe.device} against wasm`);
  const losses = await train(
    `${probe.backend}-${probe.device.replace(":", "")}`,
    probe.backend,
    probe.device,
    data,
  );
  const relative = losses.map(
    (loss, i) => Math.abs(loss - (reference[i] ?? NaN)) / Math.abs(reference[i] ?? NaN),
  );
  const worst = relative.reduce((a, b) => (Number.isNaN(b) ? NaN : Math.max(a, b)), 0);
  const ok = losses.length === reference.length && worst <= RELATIVE_TOLERANCE;
  failed ||= !ok;
  // The tolerance is the ceiling: ratio ≤ 1 passes.
  const details = {
    backend: probe.backend,
    device: probe.device,
    steps: losses.length,
    first_loss: losses[0],
    last_loss: losses.at(-1),
    ok,
  };
  emitLine(
    figure(
      `agreement/${probe.backend}/${probe.device}`,
      worst,
      "relative difference",
      details,
      RELATIVE_TOLERANCE,
    ),
  );
}

async function benchThroughput(probe: BackendProbe): Promise<void> {
  const n = probe.matmul?.n;
  const tflops = (probe.matmul?.gflops ?? NaN) / 1000;
  emitLine(
    figure(`matmul/${n}/${probe.backend}`, tflops, "TFLOP/s", {
      backend: probe.backend,
      device: probe.device,
      m: n,
      n,
      k: n,
    }),
  );
  say(`${args.model} training step and peak memory on ${probe.backend} ${probe.device}`);
  const model = args.model ?? "gpt2";
  const shape = ["--batch", args.batch ?? "4", "--seq", args.seq ?? "1024", "--vocab", "50257"];
  const stdout = await run(BENCH, [
    ...["--backend", probe.backend, "--device", probe.device, "--models", model, ...shape],
    ...["--memory-model", model, "--memory-batch", "1", "--memory-seq", args.seq ?? "1024"],
    ...["--skip-matmul", "--skip-metrics", "--skip-allreduce", "--skip-scaling", "--skip-torch"],
  ]);
  for (const line of stdout.trim().split("\n").filter(Boolean)) process.stdout.write(line + "\n");
}

say(`imtrain devices (work in ${work})`);
const devices = JSON.parse(await run(CLI, ["devices", "--json"])) as {
  backends: BackendProbe[];
  nvidia: { gpus: unknown[] };
};
const gpuProbes = devices.backends.filter(
  (p) => p.runs && p.device !== "cpu" && (args.software || p.device !== "gpu:software"),
);
emitLine({ name: "devices", value: gpuProbes.length, unit: "GPU backends that run", ...devices });
if (gpuProbes.length === 0) {
  const tried = devices.backends
    .filter((p) => p.device !== "cpu")
    .map((p) => `${p.backend} on ${p.device}: ${p.error ?? "software adapter (add --software)"}`);
  say(`no GPU backend runs here (${tried.join("; ")})`);
  process.exit(1);
}
const data = join(work, "synthetic.jsonl");
await run(CLI, ["synth", "--out", data, "--examples", "64", "--seed", "3"]);
say(`${args.steps} steps of train on wasm (the reference)`);
const reference = await train("wasm", "wasm", "cpu", data);
for (const probe of gpuProbes) {
  try {
    await checkAgreement(probe, data, reference);
    await benchThroughput(probe);
  } catch (error_) {
    failed = true;
    const error = (error_ as Error).message;
    emitLine(
      figure(`error/${probe.backend}/${probe.device}`, NaN, "", {
        backend: probe.backend,
        device: probe.device,
        error,
      }),
    );
  }
}
say(failed ? "a check failed (see the JSON lines)" : "every check passed");
process.exit(failed ? 1 : 0);
