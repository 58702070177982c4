// SIGTERM/SIGINT: the first asks the job to stop after the step in progress (with a checkpoint); a
// second one exits at once.
export function stopOnSignals(onStop?: () => void): AbortSignal {
  const stop = new AbortController();
  const handler = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: stopping after this step (again to exit now)\n`);
    stop.abort();
    onStop?.();
    process.once(signal, () => process.exit(130));
  };
  process.once("SIGTERM", handler);
  process.once("SIGINT", handler);
  return stop.signal;
}
