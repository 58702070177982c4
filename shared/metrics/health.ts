// What /healthz reports: ok, then stopping or failed, never back to ok. A readiness probe takes a process
// out of service once it stops; a person reading the body sees why.

export type HealthState =
  | { readonly status: "ok" }
  | { readonly status: "stopping"; readonly reason: string }
  | { readonly status: "failed"; readonly reason: string };

export class Health {
  private current: HealthState = { status: "ok" };
  private readonly listeners: ((state: HealthState) => void)[] = [];

  get state(): HealthState {
    return this.current;
  }

  onChange(listener: (state: HealthState) => void): void {
    this.listeners.push(listener);
    listener(this.current);
  }

  stopping(reason: string): void {
    if (this.current.status === "ok") this.set({ status: "stopping", reason });
  }

  failed(reason: string): void {
    if (this.current.status !== "failed") this.set({ status: "failed", reason });
  }

  private set(state: HealthState): void {
    this.current = state;
    for (const listener of this.listeners) listener(state);
  }
}
