// The native libraries the GPU backends load, looked for the way the dynamic loader would find them, so
// `imtrain devices` can say "libcudnn.so.8 missing" before libtensorflow says something less clear.
//   tensorflow-gpu  tfjs-node-gpu 4.22 bundles libtensorflow 2.9.1, built for CUDA 11.2 and cuDNN 8.1: it
//                   dlopens these sonames (CUDA 12's libcudart.so.12 does not satisfy libcudart.so.11.0)
//   webgpu          Dawn loads libvulkan.so.1, which loads the drivers (ICDs) listed in icd.d JSON files
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export const TENSORFLOW_GPU_LIBRARIES = [
  "libcuda.so.1",
  "libcudart.so.11.0",
  "libcublas.so.11",
  "libcublasLt.so.11",
  "libcufft.so.10",
  "libcurand.so.10",
  "libcusolver.so.11",
  "libcusparse.so.11",
  "libcudnn.so.8",
] as const;

/** Dawn's Vulkan loader (libvulkan1 on Debian); the drivers come from vulkanDrivers(). */
export const WEBGPU_LIBRARIES = ["libvulkan.so.1"] as const;

export interface FoundLibrary {
  readonly soname: string;
  /** Where the loader would find it, or undefined if nowhere. */
  readonly path: string | undefined;
}

/** Directories searched besides the loader's cache: LD_LIBRARY_PATH first, then CUDA's usual homes. */
function extraDirectories(): string[] {
  const fromEnv = (process.env["LD_LIBRARY_PATH"] ?? "").split(":").filter(Boolean);
  return [...fromEnv, "/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib"];
}

/** soname → path from `ldconfig -p` (the loader's cache); empty where ldconfig is missing. */
function loaderCache(): Map<string, string> {
  const cache = new Map<string, string>();
  let out = "";
  for (const ldconfig of ["ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"]) {
    try {
      out = execFileSync(ldconfig, ["-p"], { encoding: "utf8", timeout: 10_000, stdio: "pipe" });
      break;
    } catch {
      continue;
    }
  }
  for (const match of out.matchAll(/^\s*(\S+) \([^)]*\) => (\S+)$/gm)) {
    const [, soname = "", path = ""] = match;
    if (!cache.has(soname)) cache.set(soname, path);
  }
  return cache;
}

export function findLibraries(sonames: readonly string[]): FoundLibrary[] {
  const cache = loaderCache();
  const directories = extraDirectories();
  return sonames.map((soname) => {
    const inDirectory = directories.map((dir) => join(dir, soname)).find((path) => existsSync(path));
    return { soname, path: inDirectory ?? cache.get(soname) };
  });
}

export interface VulkanDriver {
  /** The icd.d JSON file. */
  readonly manifest: string;
  /** The driver library it names, e.g. libvulkan_lvp.so (lavapipe) or libGLX_nvidia.so.0. */
  readonly library: string;
}

/** The Vulkan drivers the loader would offer: VK_DRIVER_FILES / VK_ICD_FILENAMES, else the icd.d folders. */
export function vulkanDrivers(): VulkanDriver[] {
  const listed = process.env["VK_DRIVER_FILES"] ?? process.env["VK_ICD_FILENAMES"];
  const manifests = listed
    ? listed.split(":").filter(Boolean)
    : ["/etc/vulkan/icd.d", "/usr/share/vulkan/icd.d", "/usr/local/share/vulkan/icd.d"].flatMap((dir) =>
        existsSync(dir)
          ? readdirSync(dir)
              .filter((f) => f.endsWith(".json"))
              .map((f) => join(dir, f))
          : [],
      );
  return manifests.map((manifest) => ({ manifest, library: icdLibrary(manifest) }));
}

function icdLibrary(manifest: string): string {
  try {
    const parsed = JSON.parse(readFileSync(manifest, "utf8")) as { ICD?: { library_path?: unknown } };
    const path = parsed.ICD?.library_path;
    return typeof path === "string" ? path : "(no ICD.library_path)";
  } catch (error) {
    return `(unreadable: ${(error as Error).message})`;
  }
}
