import type { Argv, CommandModule } from "yargs";
import { analyzeDataset, type LengthStats } from "../../shared/data/analyze.js";
import type { DataFlags } from "../../shared/options.js";
import { loadDataForCommand } from "../data-command.js";
import { dataFlags, MODEL_OPTION } from "../flags.js";
import {
  MIN_FIT_POINTS,
  recommend,
  shippedResults,
  type Recommendation,
} from "../../experiment/recommend.js";
import { modelPositions } from "../../shared/model/source.js";

interface AnalyzeFlags extends DataFlags {
  model: string;
  results?: string[] | undefined;
  json: boolean;
}

function recommendationLines(r: Recommendation | undefined, files: number): string[] {
  if (r === undefined)
    return [
      files === 0
        ? "recommended λ   none: no experiment results to fit (run imtrain experiment, then --results)"
        : `recommended λ   none: the ${files} results files hold no λ paired with IT in ${MIN_FIT_POINTS} or more (data set, size) cells`,
    ];
  const b = r.basis;
  const predictions = r.predictions
    .map((p) => `λ=${p.lambda}: ${p.difference >= 0 ? "+" : ""}${p.difference.toFixed(3)}`)
    .join(", ");
  return [
    `recommended λ   --prompt-loss-weight ${r.promptLossWeight} (${r.promptLossWeight === 0 ? "IT" : r.promptLossWeight === 1 ? "IM" : "between IT and IM"})`,
    `  fitted held-out output loss vs IT at this ratio and size: ${predictions}`,
    `  based on ${b.runs} runs of ${b.experiments.join(", ")} (ratios ${b.ratios[0].toFixed(2)}–${b.ratios[1].toFixed(2)}, ${b.trainExamples[0]}–${b.trainExamples[1]} training examples; small models, see README "Results"); outside those ranges it extrapolates`,
  ];
}

const row = (name: string, s: LengthStats) =>
  `${name.padEnd(15)} mean ${s.mean.toFixed(1).padStart(8)}  median ${String(s.median).padStart(7)}  min ${String(s.min).padStart(6)}  max ${String(s.max).padStart(7)}`;

export const analyzeCommand: CommandModule<object, AnalyzeFlags> = {
  command: "analyze",
  describe:
    "Example count, prompt/output token statistics, instruction/output length ratio, truncation and drops",
  builder: (yargs: Argv) =>
    dataFlags(yargs)
      .option("model", MODEL_OPTION)
      .option("results", {
        type: "string",
        array: true,
        describe:
          "Experiment results.json files to recommend a λ from (default: the results shipped in experiments/results/)",
      })
      .option("json", {
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
    const resultFiles = argv.results ?? shippedResults();
    const recommendation = recommend(resultFiles, analysis.instruction_output_ratio, analysis.examples);
    if (argv.json) {
      const line = {
        ...analysis,
        ...context,
        tokenizer: tokenizer.name,
        recommendation: recommendation ?? null,
      };
      process.stdout.write(JSON.stringify(line) + "\n");
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
        ...recommendationLines(recommendation, resultFiles.length),
      ].join("\n") + "\n",
    );
  },
};
