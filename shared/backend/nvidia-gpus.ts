// The NVIDIA GPUs of this node as the driver reports them (nvidia-smi), for `imtrain devices` and the MFU
// table. No nvidia-smi (a CPU node, a container started without the NVIDIA runtime) is not an error here:
// the census says why it is empty.
import { execFileSync } from "node:child_process";

export interface NvidiaGpu {
  /** nvidia-smi's index: with CUDA_VISIBLE_DEVICES or one GPU per container, the process's gpu:K. */
  readonly index: number;
  readonly name: string;
  readonly driverVersion: string;
  readonly memoryMiB: number;
}

export interface NvidiaCensus {
  readonly gpus: readonly NvidiaGpu[];
  /** Why there are none: nvidia-smi missing or failing. */
  readonly error: string | undefined;
}

let census: NvidiaCensus | undefined;

/** nvidia-smi's list, queried once per process (10 s deadline). */
export function nvidiaCensus(): NvidiaCensus {
  census ??= queryNvidiaSmi();
  return census;
}

export function nvidiaGpus(): readonly NvidiaGpu[] {
  return nvidiaCensus().gpus;
}

function queryNvidiaSmi(): NvidiaCensus {
  let out: string;
  try {
    out = execFileSync(
      "nvidia-smi",
      ["--query-gpu=index,name,driver_version,memory.total", "--format=csv,noheader,nounits"],
      { encoding: "utf8", timeout: 10_000, stdio: ["ignore", "pipe", "pipe"] },
    );
  } catch (error) {
    const { code, stderr } = error as { code?: string; stderr?: string };
    const why =
      code === "ENOENT"
        ? "nvidia-smi not found (no NVIDIA driver, or a container without the NVIDIA runtime)"
        : `nvidia-smi failed: ${(stderr ?? (error as Error).message).trim().split("\n")[0]}`;
    return { gpus: [], error: why };
  }
  return { gpus: out.trim().split("\n").filter(Boolean).map(parseGpuLine), error: undefined };
}

export function parseGpuLine(line: string): NvidiaGpu {
  const [index = "", name = "", driverVersion = "", memory = ""] = line.split(",").map((f) => f.trim());
  return { index: Number(index), name, driverVersion, memoryMiB: Number(memory) };
}
