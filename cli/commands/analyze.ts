import type { Argv, CommandModule } from "yargs";
import { analyzeDataset, type LengthStats } from "../../shared/data/analyze.js";
import type { DataFlags } from "../../shared/options.js";
import { loadDataForCommand } from "../data-command.js";
import { dataFlags, MODEL_OPTION } from "../flags.js";
import { modelPositions } from "../../shared/model/source.js";

interface AnalyzeFlags extends DataFlags {
  model: string;
  json: boolean;
}

const row = (name: string, s: LengthStats) =>
  `${name.padEnd(15)} mean ${s.mean.toFixed(1).padStart(8)}  median ${String(s.median).padStart(7)}  min ${String(s.min).padStart(6)}  max ${String(s.max).padStart(7)}`;

export const analyzeCommand: CommandModule<object, AnalyzeFlags> = {
  command: "analyze",
  describe:
    "Example count, prompt/output token statistics, instruction/output length ratio, truncation and drops",
  builder: (yargs: Argv) =>
    dataFlags(yargs).option("model", MODEL_OPTION).option("json", {
      type: "boolean",
      default: false,
      describe: "Print one JSON object",
    }) as unknown as Argv<AnalyzeFlags>,
  handler: async (argv) => {
    const maxPositions = await modelPositions(argv.model);
    const { dataset, tokenizer, options } = await loadDataForCommand(argv, maxPositions);
    const analysis = analyzeDataset(dataset);
    const context = {
      context_length: options.contextLength ?? maxPositions,
      truncation: options.truncation,
      model: argv.model,
    };
    if (argv.json) {
      process.stdout.write(JSON.stringify({ ...analysis, ...context, tokenizer: tokenizer.name }) + "\n");
      return;
    }
    process.stdout.write(
      [
        `${analysis.file} (tokenizer ${tokenizer.name})`,
        `context         ${context.context_length} tokens (${options.contextLength === undefined ? `--model ${argv.model}'s` : "--context-length"}), --truncation ${context.truncation}`,
        `examples        ${analysis.examples} of ${analysis.conversations} (truncated ${analysis.truncated}, dropped ${analysis.dropped}: no output token left)`,
        `cut tokens      ${analysis.truncated_prompt_tokens} from prompts, ${analysis.truncated_output_tokens} from outputs`,
        row("prompt tokens", analysis.prompt_tokens),
        row("output tokens", analysis.output_tokens),
        `instruction/output length ratio ${analysis.instruction_output_ratio.toFixed(3)}  (IM tends to help when this is high)`,
        `total tokens    ${analysis.total_tokens}`,
      ].join("\n") + "\n",
    );
  },
};
