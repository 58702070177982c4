// A GPU adapter as logs, /metrics and the summary describe it (webgpu's; no tfjs here, so metrics code can
// use it without loading a backend).

/** What a log line, /metrics and the summary say about the adapter. */
export interface AdapterReport {
  /** Dawn's adapter name, e.g. "NVIDIA H100 80GB HBM3" or "llvmpipe (LLVM 15.0.6, 256 bits)". */
  readonly name: string;
  /** The driver's description, e.g. "llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)". */
  readonly description: string;
  readonly vendor: string;
  /** Dawn's backend: vulkan, metal, d3d12. */
  readonly api: string;
  readonly software: boolean;
  /** Bytes: no buffer bound to a shader may exceed the first, no buffer the second. */
  readonly maxStorageBufferBindingSize: number;
  readonly maxBufferSize: number;
  /** The compute limits the device was created with (WebGPU's names), for `imtrain devices`. */
  readonly computeLimits: Readonly<Record<string, number>>;
}

export function describeAdapter(adapter: AdapterReport): string {
  const mib = (bytes: number) => `${Math.floor(bytes / 2 ** 20)} MiB`;
  return (
    `adapter "${adapter.name}" (${adapter.api}${adapter.software ? ", software" : ""}; ${adapter.description}; ` +
    `max storage binding ${mib(adapter.maxStorageBufferBindingSize)}, max buffer ${mib(adapter.maxBufferSize)})`
  );
}

/** The adapter in a label or summary field: its name and the driver's description. */
export function adapterLabel(adapter: AdapterReport | undefined): string {
  return adapter ? `${adapter.name} (${adapter.description})` : "";
}
