import type { Argv, CommandModule } from "yargs";
import { readDataFile } from "../../shared/data/formats.js";
import { renderConversation, type Span } from "../../shared/data/template.js";
import { spanWeight } from "../../shared/data/encode.js";
import type { DataFlags, DataOptions } from "../../shared/options.js";
import { loadDataForCommand } from "../data-command.js";
import { dataFlags } from "../flags.js";

interface MasksFlags extends DataFlags {
  limit: number;
  json: boolean;
}

const COLOURS = { output: "\x1b[32m", prompt: "\x1b[33m", template: "\x1b[2m" } as const;
const RESET = "\x1b[0m";

function colouredSpans(spans: readonly Span[], options: DataOptions): string {
  return spans
    .map((span) => {
      const text = span.eos ? "</s>" : span.text;
      const weight = spanWeight(span.kind, options.weighting);
      return weight === 0 && span.kind !== "template"
        ? `\x1b[9m${text}${RESET}`
        : `${COLOURS[span.kind]}${text}${RESET}`;
    })
    .join("");
}

export const masksCommand: CommandModule<object, MasksFlags> = {
  command: "masks",
  describe: "Show which tokens carry which loss weight (--json: ids and weights per example)",
  builder: (yargs: Argv) =>
    dataFlags(yargs)
      .option("limit", { type: "number", default: 3, describe: "Examples to show" })
      .option("json", {
        type: "boolean",
        default: false,
        describe: 'One line per example: {"index","ids","weights"}; weights[i] weighs predicting ids[i]',
      }) as unknown as Argv<MasksFlags>,
  handler: async (argv) => {
    const { options, dataset } = await loadDataForCommand(argv);
    const shown = dataset.examples.slice(0, argv.limit);
    if (argv.json) {
      for (const e of shown)
        process.stdout.write(
          JSON.stringify({ index: e.index, ids: [...e.ids], weights: [...e.weights] }) + "\n",
        );
      return;
    }
    const { promptLossWeight: lambda, templateLossWeight } = options.weighting;
    process.stdout.write(
      `${COLOURS.output}output w=1${RESET}  ${COLOURS.prompt}prompt w=${lambda}${RESET}  ${COLOURS.template}template w=${templateLossWeight}${RESET}  (struck through: prompt with weight 0)\n\n`,
    );
    const conversations = readDataFile(
      options.dataFile,
      options.format,
      options.dropEmptyOutputs ? { onEmptyOutput: () => {} } : {},
    );
    for (const e of shown) {
      const conversation = conversations[e.index];
      if (conversation === undefined) continue;
      const truncated = e.truncatedTokens > 0 ? `  [cut after ${e.ids.length} tokens]` : "";
      process.stdout.write(
        `── example ${e.index} (${e.source.file}:${e.source.line}, ${e.ids.length} tokens)${truncated}\n`,
      );
      process.stdout.write(
        colouredSpans(renderConversation(conversation, options.template, options), options) + "\n\n",
      );
    }
  },
};
