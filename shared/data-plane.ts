// Where and how gradients travel between ranks: the choices the coordinator's flags offer, the job spec
// carries and its schema checks. A module of its own so that protocol.ts and protocol-schemas.ts (which
// protocol.ts imports) both take the lists from here.

export const DATA_PLANES = ["nats", "ws"] as const;
export type DataPlane = (typeof DATA_PLANES)[number];

/** The float format gradients cross the data plane in (worker/allreduce/wire-dtype.ts); sums stay fp32. */
export const WIRE_DTYPES = ["fp32", "bf16", "fp16"] as const;
export type WireDtype = (typeof WIRE_DTYPES)[number];
