import type { Argv, CommandModule } from "yargs";
import { BACKEND_NAMES, type BackendName } from "../../shared/backend/select.js";
import { inRange, type DataFlags } from "../../shared/options.js";
import { scoreExamples } from "../../shared/train/score.js";
import { loadDataForCommand } from "../data-command.js";
import { dataFlags } from "../flags.js";
import { loadModelForCommand } from "../model-command.js";

interface ScoreFlags extends DataFlags {
  model: string;
  backend: string;
  json: boolean;
  microBatchSize: number;
}

export const scoreCommand: CommandModule<object, ScoreFlags> = {
  command: "score",
  describe: "Per-example mean output-token loss and mean all-token loss of a trained model",
  builder: (yargs: Argv) =>
    dataFlags(yargs)
      .option("model", {
        type: "string",
        demandOption: true,
        describe: "Checkpoint directory, or a run directory (its checkpoint/)",
      })
      .option("backend", { type: "string", default: "auto", choices: BACKEND_NAMES })
      .option("micro-batch-size", { type: "number", default: 16 })
      .option("json", {
        type: "boolean",
        default: false,
        describe: "One JSON line per example",
      }) as unknown as Argv<ScoreFlags>,
  handler: async (argv) => {
    inRange("micro-batch-size", argv.microBatchSize, 1, 1 << 20, true);
    // The model's tokenizer unless --tokenizer was given explicitly.
    const tokenizerFlag = process.argv.some((a) => a.startsWith("--tokenizer")) ? argv.tokenizer : undefined;
    const { model, tokenizer } = await loadModelForCommand(
      argv.model,
      argv.backend as BackendName,
      tokenizerFlag,
    );
    const { dataset } = await loadDataForCommand(argv, model.config.maxPositions, tokenizer);
    const scores = scoreExamples(model, dataset.examples, argv.microBatchSize, tokenizer.eosId);
    let outputSum = 0;
    let outputTokens = 0;
    for (const s of scores) {
      const line = {
        index: s.index,
        output_loss: s.outputLossSum / Math.max(1, s.outputTokens),
        all_loss: s.allLossSum / Math.max(1, s.allTokens),
        output_tokens: s.outputTokens,
        tokens: s.allTokens,
      };
      outputSum += s.outputLossSum;
      outputTokens += s.outputTokens;
      process.stdout.write(
        argv.json
          ? JSON.stringify(line) + "\n"
          : `${String(s.index).padStart(6)}  output ${line.output_loss.toFixed(4)}  all ${line.all_loss.toFixed(4)}\n`,
      );
    }
    if (!argv.json)
      process.stdout.write(
        `mean output-token loss ${(outputSum / Math.max(1, outputTokens)).toFixed(4)} over ${scores.length} examples\n`,
      );
  },
};
