// Flag definitions shared by commands, with help text that says what each does and its unit.
import yargs, { type Argv } from "yargs";
import { UserError } from "../shared/errors.js";
import type { TrainFlags } from "../shared/options.js";
import { BACKEND_NAMES } from "../shared/backend/select.js";
import { DATA_PLANES, JOB_NAME, WIRE_DTYPES } from "../shared/protocol.js";
import { DATA_FORMATS } from "../shared/data/formats.js";
import { TEMPLATE_NAMES } from "../shared/data/template.js";
import { TRUNCATION_MODES } from "../shared/data/encode.js";
import { LOSS_REDUCTIONS } from "../shared/train/loss.js";
import { LR_SCHEDULES } from "../shared/train/schedule.js";

/** `required`: false where the command checks for --data itself (launch needs it only with a coordinator). */
export function dataFlags<T>(yargs: Argv<T>, required = true) {
  return yargs
    .option("data", {
      type: "string",
      demandOption: required,
      describe: "Training data file (.json or .jsonl)",
    })
    .option("format", {
      type: "string",
      default: "auto",
      choices: ["auto", ...DATA_FORMATS],
      describe: "Record format; auto detects it from the first record's keys",
    })
    .option("template", {
      type: "string",
      default: "tulu",
      choices: TEMPLATE_NAMES,
      describe: "Prompt template (tulu: <|user|>\\n…\\n<|assistant|>\\n…</s>)",
    })
    .option("tokenizer", {
      type: "string",
      default: "byte",
      describe: "byte, gpt2, or a path to a Hugging Face tokenizer.json (or its directory)",
    })
    .option("eos-token", {
      type: "string",
      describe: "End-of-sequence token text for a tokenizer.json that does not declare one",
    })
    .option("loss-mode", {
      type: "string",
      choices: ["it", "im"],
      describe: "it: loss on outputs only (λ=0); im: also on instructions (λ=1)",
    })
    .option("prompt-loss-weight", {
      type: "number",
      describe: "λ: loss weight on instruction/input/system tokens, 0..1 (default 0 = IT)",
    })
    .option("template-loss-weight", {
      type: "number",
      default: 0,
      describe: "Loss weight on template and role-marker tokens (the paper's IM uses 0)",
    })
    .option("last-turn-only", {
      type: "boolean",
      default: false,
      describe: "Multi-turn: train only the final assistant turn (earlier ones weigh as prompt)",
    })
    .option("context-length", {
      type: "number",
      describe:
        "Longest sequence in tokens (default: the model's maximum); longer examples are cut (--truncation)",
    })
    .option("truncation", {
      type: "string",
      default: "prompt",
      choices: TRUNCATION_MODES,
      describe:
        "How a too-long example is cut. prompt: drop prompt tokens from the start of the prompt, keeping the template and the output whole (the end too, only if those alone do not fit); end: keep the first tokens, as open-instruct does (a long prompt takes the output with it)",
    })
    .option("drop-empty-outputs", {
      type: "boolean",
      default: false,
      describe: "Skip records with an empty output instead of stopping with an error",
    });
}

/** --model, as train reads it; analyze and masks take it too, so they cut examples as training would. */
export const MODEL_OPTION = {
  type: "string",
  default: "tiny",
  describe:
    "Preset (tiny, small, medium, gpt2), a checkpoint directory, or a GPT-2 config.json for a fresh model",
} as const;

export function trainFlags<T>(yargs: Argv<T>, required = true) {
  return dataFlags(yargs, required)
    .option("eval-data", { type: "string", describe: "Held-out data file (same format flags as --data)" })
    .option("eval-fraction", {
      type: "number",
      default: 0.1,
      describe: "Without --eval-data: fraction of --data held out for eval (0 = none)",
    })
    .option("eval-examples", {
      type: "number",
      default: 256,
      describe: "Most examples scored per eval set (held-out and the fixed training subset)",
    })
    .option("model", MODEL_OPTION)
    .option("backend", {
      type: "string",
      default: "auto",
      choices: BACKEND_NAMES,
      describe: "Compute backend; auto takes the first that loads: tensorflow-gpu, tensorflow, wasm, cpu",
    })
    .option("resume", {
      type: "string",
      describe:
        "Continue a run from its checkpoint, in its own directory (a run directory or its checkpoint/; no --out needed)",
    })
    .option("steps", { type: "number", describe: "Optimizer steps (default 100 unless --epochs)" })
    .option("epochs", { type: "number", describe: "Passes over the training data, instead of --steps" })
    .option("batch-size", {
      type: "number",
      default: 16,
      describe: "Examples per optimizer step, over all workers",
    })
    .option("micro-batch-size", {
      type: "number",
      describe: "Examples per forward/backward pass (gradient accumulation); default = batch size",
    })
    .option("lr", { type: "number", default: 1e-3, describe: "Peak learning rate" })
    .option("warmup-steps", { type: "number", default: 10, describe: "Linear warmup steps" })
    .option("schedule", {
      type: "string",
      default: "cosine",
      choices: LR_SCHEDULES,
      describe: "Decay after warmup",
    })
    .option("min-lr-ratio", {
      type: "number",
      default: 0.1,
      describe: "Final lr as a fraction of --lr (cosine, linear)",
    })
    .option("weight-decay", {
      type: "number",
      default: 0.01,
      describe: "AdamW decoupled weight decay (matrices only)",
    })
    .option("beta1", { type: "number", default: 0.9 })
    .option("beta2", { type: "number", default: 0.999 })
    .option("adam-epsilon", { type: "number", default: 1e-8 })
    .option("clip-grad-norm", {
      type: "number",
      default: 1,
      describe: "Clip the global gradient L2 norm (0 = off)",
    })
    .option("loss-reduction", {
      type: "string",
      default: "token",
      choices: LOSS_REDUCTIONS,
      describe: "token: Σw·CE/Σw over the step; example: mean of per-example means (the paper's); sum: Σw·CE",
    })
    .option("neftune-alpha", {
      type: "number",
      default: 0,
      describe: "NEFTune noise α on input embeddings (0 = off; the paper uses 5)",
    })
    .option("kl-weight", {
      type: "number",
      default: 0,
      describe: "β for KL(p_θ ‖ p_start) over the vocabulary at loss-weighted positions",
    })
    .option("seed", {
      type: "number",
      default: 0,
      describe: "Seeds initialisation, data order, eval split and noise",
    })
    .option("eval-every", {
      type: "number",
      default: 0,
      describe: "Evaluate every K steps (always at the end)",
    })
    .option("checkpoint-every", {
      type: "number",
      default: 0,
      describe: "Checkpoint every K steps (always at the end)",
    })
    .option("keep-checkpoints", {
      type: "number",
      default: 2,
      describe:
        "Checkpoints kept: the newest in OUT/checkpoint, older ones as OUT/checkpoint.step-N; a resume skips a damaged newest one",
    })
    .option("checkpoint-every-minutes", {
      type: "number",
      default: 10,
      describe: "Also checkpoint when this many minutes of training have passed since the last one (0 = off)",
    })
    .option("out", {
      type: "string",
      describe:
        "Run directory: metrics.jsonl, summary.json, checkpoint/ (default: a new runs/<UTC time>-<command or --job>; with --resume, the resumed run's)",
    })
    .option("overwrite", {
      type: "boolean",
      default: false,
      describe:
        "Replace the run already in --out (its checkpoint, metrics and summary are deleted as the new run starts); without it such an --out is refused",
    });
}

/** --metrics-port/--metrics-host: every long-running command serves /metrics and /healthz when asked. */
export function metricsEndpointFlags<T>(yargs: Argv<T>) {
  return yargs
    .option("metrics-port", {
      type: "number",
      describe:
        "Serve Prometheus metrics (GET /metrics) and health (GET /healthz) on this port; 0 = a free port (logged). Default: no endpoint",
    })
    .option("metrics-host", {
      type: "string",
      default: "127.0.0.1",
      describe: "Address the metrics endpoint listens on (0.0.0.0 to be scraped from other hosts)",
    })
    .option("metrics-linger-s", {
      type: "number",
      default: 0,
      describe:
        "Keep /metrics up this many seconds after the job ends (/healthz already 503), so Prometheus scrapes how it ended; about twice the scrape interval",
    });
}

/** --peak-tflops: for the ranks' MFU; only commands that run a rank take it. */
export function peakFlopsFlag<T>(yargs: Argv<T>) {
  return yargs.option("peak-tflops", {
    type: "number",
    describe:
      "This rank's peak TFLOP/s, for MFU (default: a known GPU's data-sheet figure, else the backend's measured matmul ceiling)",
  });
}

/** Parses `train` flags with their defaults (for programmatic use and tests). */
export function parseTrainFlags(args: readonly string[]): TrainFlags {
  return trainFlags(yargs([...args]))
    .strict()
    .fail((message) => {
      throw new UserError(message);
    })
    .parseSync() as unknown as TrainFlags;
}

/** --job: one NATS subject token, checked at parse time (a "." or ">" in it would change what it matches). */
export const JOB_OPTION = {
  type: "string",
  default: "default",
  coerce: (job: string): string => {
    if (!JOB_NAME.test(job))
      throw new UserError(`--job: "${job}" is not a job name (1 to 64 letters, digits, "_" or "-")`);
    return job;
  },
} as const;

/** NATS URL default: $NATS_URL, read once here at start-up. */
export const DEFAULT_NATS_URL = process.env["NATS_URL"] ?? "nats://127.0.0.1:4222";

/** Flags of the coordinator (also accepted by launch, which forwards them). */
export function coordinatorFlags<T>(yargs: Argv<T>, required = true) {
  return metricsEndpointFlags(trainFlags(yargs, required))
    .option("workers", {
      type: "number",
      demandOption: required,
      describe: "Number of workers (ranks) in the job",
    })
    .option("job", {
      ...JOB_OPTION,
      describe: "Job name: the NATS subject prefix, so jobs can share a server",
    })
    .option("data-plane", {
      type: "string",
      default: "ws",
      choices: DATA_PLANES,
      describe:
        "Where gradients travel: ws, direct WebSocket links between workers, NATS carrying control only (each worker must be reachable at its --advertise-host); or nats, every gradient byte through the NATS server",
    })
    .option("allreduce-dtype", {
      type: "string",
      default: "fp32",
      choices: WIRE_DTYPES,
      describe:
        "The format gradients cross the data plane in: fp32, or bf16/fp16 for half the bytes (sums stay fp32, as PyTorch DDP's compression hooks; fp16 flushes gradients below 6e-8 to zero)",
    })
    .option("checksum-every", {
      type: "number",
      default: 10,
      describe: "Compare parameter checksums across ranks every K steps (and at the end)",
    })
    .option("heartbeat-ms", {
      type: "number",
      default: 1000,
      describe: "Heartbeat period both ways (workers send theirs from a thread of their own)",
    })
    .option("heartbeat-timeout-ms", {
      type: "number",
      default: 10_000,
      describe: "A worker whose heartbeats stop this long is lost (kill -9, OOM, a cut network)",
    })
    .option("worker-timeout-ms", {
      type: "number",
      default: 120_000,
      describe:
        "Longest a step's compute may take: a rank's reply is due within twice this, a ring message within it",
    })
    .option("min-workers", {
      type: "number",
      default: 1,
      describe:
        "Elastic recovery: after a lost worker the job goes on with the others (same global batch) while at least this many are left",
    })
    .option("allow-mixed-backends", {
      type: "boolean",
      default: false,
      describe:
        "Let ranks run on different backends (their float arithmetic differs, so parameter checksums will not match: use with --checksum-every 0)",
    })
    .option("max-restarts", {
      type: "number",
      default: 3,
      describe: "Most recoveries a job makes before a further loss stops it (with a checkpoint)",
    })
    .option("replacement-timeout-ms", {
      type: "number",
      default: 300_000,
      describe:
        "Fewer than --min-workers left after a loss: how long to wait for replacement workers (imtrain worker --job …) before stopping with a checkpoint (0: stop at once)",
    })
    .option("join-timeout-ms", {
      type: "number",
      default: 600_000,
      describe: "How long to wait for all workers to join",
    });
}
