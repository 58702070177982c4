import type { Argv, CommandModule } from "yargs";
import { analyzeDataset, type LengthStats } from "../../shared/data/analyze.js";
import type { DataFlags } from "../../shared/options.js";
import { loadDataForCommand } from "../data-command.js";
import { dataFlags } from "../flags.js";

interface AnalyzeFlags extends DataFlags {
  json: boolean;
}

const row = (name: string, s: LengthStats) =>
  `${name.padEnd(15)} mean ${s.mean.toFixed(1).padStart(8)}  median ${String(s.median).padStart(7)}  min ${String(s.min).padStart(6)}  max ${String(s.max).padStart(7)}`;

export const analyzeCommand: CommandModule<object, AnalyzeFlags> = {
  command: "analyze",
  describe:
    "Example count, prompt/output token statistics, instruction/output length ratio, truncation and drops",
  builder: (yargs: Argv) =>
    dataFlags(yargs).option("json", {
      type: "boolean",
      default: false,
      describe: "Print one JSON object",
    }) as unknown as Argv<AnalyzeFlags>,
  handler: async (argv) => {
    const { dataset, tokenizer } = await loadDataForCommand(argv);
    const analysis = analyzeDataset(dataset);
    if (argv.json) {
      process.stdout.write(JSON.stringify({ ...analysis, tokenizer: tokenizer.name }) + "\n");
      return;
    }
    process.stdout.write(
      [
        `${analysis.file} (tokenizer ${tokenizer.name})`,
        `examples        ${analysis.examples} of ${analysis.conversations} (truncated ${analysis.truncated}, dropped ${analysis.dropped})`,
        row("prompt tokens", analysis.prompt_tokens),
        row("output tokens", analysis.output_tokens),
        `instruction/output length ratio ${analysis.instruction_output_ratio.toFixed(3)}  (IM tends to help when this is high)`,
        `total tokens    ${analysis.total_tokens}`,
      ].join("\n") + "\n",
    );
  },
};
