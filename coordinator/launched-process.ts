// One child of `imtrain launch` (the coordinator or a worker): spawned with its stderr prefixed line by
// line, and its end recorded once, from spawn. A child killed by a signal has `exitCode === null` and its
// 'exit' has already fired, so asking "has it exited?" later is wrong; `ended` is settled exactly once.
import { spawn, type ChildProcess } from "node:child_process";
import { constants } from "node:os";

/** How a child ended. */
export type ProcessEnd =
  | { readonly kind: "exited"; readonly code: number }
  | { readonly kind: "killed"; readonly signal: NodeJS.Signals }
  | { readonly kind: "unstarted"; readonly message: string };

/** The shell's convention: the code, 128 + the signal's number, or 127 for a program that did not start. */
export function exitStatus(end: ProcessEnd): number {
  if (end.kind === "exited") return end.code;
  if (end.kind === "killed") return 128 + (constants.signals[end.signal] ?? 0);
  return 127;
}

/** "exited 2", "was killed by SIGKILL", "could not start (spawn ENOENT)". */
export function describeEnd(end: ProcessEnd): string {
  if (end.kind === "exited") return `exited ${end.code}`;
  if (end.kind === "killed") return `was killed by ${end.signal}`;
  return `could not start (${end.message})`;
}

export interface LaunchedProcessOptions {
  /** "coordinator", "w0": the prefix of its log lines and its name in launch's messages. */
  readonly name: string;
  readonly args: readonly string[];
  /** Pass its stdout through (the coordinator's summary line); otherwise it is discarded. */
  readonly passStdout: boolean;
  /** Where its prefixed stderr lines go. */
  readonly write: (text: string) => void;
  /** Its environment (launch puts NATS credentials there, not in argv); default ours. */
  readonly env?: NodeJS.ProcessEnv;
}

export class LaunchedProcess {
  readonly name: string;
  /** When it ended (Date.now()), to tell which child failed first. */
  endedAtMs: number | undefined;
  /** Set by launch when it killed this child itself, so that kill is not blamed on the child. */
  killedByLaunch = false;
  private endValue: ProcessEnd | undefined;
  /** Settles once, when the process has exited or failed to start. */
  readonly ended: Promise<ProcessEnd>;
  /** Settles when its stderr has been read to the end as well (or at once if it never started). */
  private readonly drained: Promise<void>;
  private readonly child: ChildProcess;

  constructor(options: LaunchedProcessOptions) {
    this.name = options.name;
    // Its own process group: a Ctrl-C or a systemd SIGTERM to launch's group reaches launch alone, and
    // launch tells each child exactly once what to do (the coordinator drains; see launch.ts).
    this.child = spawn(process.execPath, [...options.args], {
      stdio: ["ignore", options.passStdout ? "inherit" : "ignore", "pipe"],
      detached: true,
      ...(options.env ? { env: options.env } : {}),
    });
    let settle!: (end: ProcessEnd) => void;
    this.ended = new Promise((resolve) => (settle = resolve));
    const end = (value: ProcessEnd) => {
      if (this.endValue !== undefined) return;
      this.endValue = value;
      this.endedAtMs = Date.now();
      settle(value);
    };
    this.child.once("exit", (code, signal) =>
      end(signal !== null ? { kind: "killed", signal } : { kind: "exited", code: code ?? 0 }),
    );
    this.child.once("error", (error) => {
      // 'error' also reports a failed kill(); only a child that never got a pid did not start.
      if (this.child.pid === undefined) end({ kind: "unstarted", message: error.message });
    });
    this.drained = new Promise((resolve) => this.child.once("close", () => resolve()));
    prefixLines(this.child, options.name, options.write);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** undefined while it runs. */
  get end(): ProcessEnd | undefined {
    return this.endValue;
  }

  get running(): boolean {
    return this.endValue === undefined;
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** Resolves once it has ended and its last log lines are out, or after `timeoutMs` regardless. */
  async settled(timeoutMs: number): Promise<void> {
    await within(
      this.ended.then(() => this.drained),
      timeoutMs,
    );
  }
}

/** Resolves true once `promise` settles, or false after `timeoutMs`: every wait in launch has a deadline. */
export async function within(promise: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function prefixLines(child: ChildProcess, prefix: string, write: (text: string) => void): void {
  let pending = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    const lines = (pending + chunk.toString()).split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines.map((l) => l.replace(/\r/g, "")))
      if (line !== "") write(`[${prefix}] ${line}\n`);
  });
  child.stderr?.on("end", () => {
    if (pending !== "") write(`[${prefix}] ${pending}\n`);
  });
}
