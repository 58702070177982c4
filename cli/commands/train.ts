import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import { runTrainJob } from "../../coordinator/train-job.js";
import { DEVICE_HELP, defaultTrainDevice, parseDevice } from "../../shared/backend/device.js";
import { compileMetricsOptions, type MetricsFlags } from "../../shared/metrics/options.js";
import { compileTrainOptions, type TrainFlags } from "../../shared/options.js";
import { metricsEndpointFlags, peakFlopsFlag, trainFlags } from "../flags.js";
import { finishedLine } from "../finished-line.js";
import { openRunDir, startRunDir, type RunDirFlags } from "../run-dir.js";
import { writeReportOrSay } from "../run-report.js";
import { terminalStyle } from "../../shared/terminal.js";
import { stopOnSignals } from "../signals.js";

type TrainCommandFlags = TrainFlags & MetricsFlags & RunDirFlags & { device: string | undefined };

export const trainCommand: CommandModule<object, TrainCommandFlags> = {
  command: "train",
  describe: "Train in one process (one rank, no network)",
  builder: (yargs: Argv) =>
    peakFlopsFlag(metricsEndpointFlags(trainFlags(yargs))).option("device", {
      type: "string",
      describe: `${DEVICE_HELP}; default gpu:0 for --backend tensorflow-gpu or webgpu, else cpu`,
    }) as unknown as Argv<TrainCommandFlags>,
  handler: async (argv: ArgumentsCamelCase<TrainCommandFlags>) => {
    const log = (line: string) => process.stderr.write(line + "\n");
    const runDir = await openRunDir(argv, "train");
    const options = compileTrainOptions({ ...argv, out: runDir.dir });
    const device = argv.device === undefined ? defaultTrainDevice(options.backend) : parseDevice(argv.device);
    const metrics = compileMetricsOptions(argv);
    if (!(await startRunDir(runDir, options, log))) return;
    const summary = await runTrainJob(
      options,
      log,
      { signal: stopOnSignals(), terminal: terminalStyle(process.stderr) },
      metrics,
      device,
    );
    log(finishedLine(summary, await writeReportOrSay([summary.out_dir], log)));
    process.stdout.write(JSON.stringify(summary) + "\n");
  },
};
