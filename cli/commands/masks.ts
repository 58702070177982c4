import type { Argv, CommandModule } from "yargs";
import { readDataFile } from "../../shared/data/formats.js";
import { renderConversation, type Span } from "../../shared/data/template.js";
import { spanWeight } from "../../shared/data/encode.js";
import type { DataFlags, DataOptions } from "../../shared/options.js";
import { paint, terminalStyle, type TerminalStyle } from "../../shared/terminal.js";
import { loadDataForCommand } from "../data-command.js";
import { dataFlags, MODEL_OPTION } from "../flags.js";
import { modelPositions } from "../../shared/model/source.js";

interface MasksFlags extends DataFlags {
  model: string;
  limit: number;
  json: boolean;
}

const COLOURS = { output: "32", prompt: "33", template: "2" } as const;
const STRUCK = "9";

/** On a terminal: the text coloured by kind, weight-0 prompt struck through. */
function colouredSpans(spans: readonly Span[], options: DataOptions, style: TerminalStyle): string {
  return spans
    .map((span) => {
      const text = span.eos ? "</s>" : span.text;
      const weight = spanWeight(span.kind, options.weighting);
      return paint(style, weight === 0 && span.kind !== "template" ? STRUCK : COLOURS[span.kind], text);
    })
    .join("");
}

/** Into a pipe, a file or with NO_COLOR: one line per span with its kind and weight, no escape codes. */
function labelledSpans(spans: readonly Span[], options: DataOptions): string {
  return spans
    .map((span) => {
      const text = span.eos ? "</s>" : span.text;
      const weight = spanWeight(span.kind, options.weighting);
      return `  ${span.kind.padEnd(8)} w=${String(weight).padEnd(4)} ${JSON.stringify(text)}`;
    })
    .join("\n");
}

export const masksCommand: CommandModule<object, MasksFlags> = {
  command: "masks",
  describe: "Show which tokens carry which loss weight (--json: ids and weights per example)",
  builder: (yargs: Argv) =>
    dataFlags(yargs)
      .option("model", MODEL_OPTION)
      .option("limit", { type: "number", default: 3, describe: "Examples to show" })
      .option("json", {
        type: "boolean",
        default: false,
        describe: 'One line per example: {"index","ids","weights"}; weights[i] weighs predicting ids[i]',
      }) as unknown as Argv<MasksFlags>,
  handler: async (argv) => {
    const { options, dataset } = await loadDataForCommand(argv, await modelPositions(argv.model));
    const shown = dataset.examples.slice(0, argv.limit);
    if (argv.json) {
      for (const e of shown)
        process.stdout.write(
          JSON.stringify({ index: e.index, ids: [...e.ids], weights: [...e.weights] }) + "\n",
        );
      return;
    }
    const { promptLossWeight: lambda, templateLossWeight } = options.weighting;
    const style = terminalStyle(process.stdout);
    if (style.colour) {
      process.stdout.write(
        `${paint(style, COLOURS.output, "output w=1")}  ${paint(style, COLOURS.prompt, `prompt w=${lambda}`)}  ${paint(style, COLOURS.template, `template w=${templateLossWeight}`)}  (struck through: prompt with weight 0)\n\n`,
      );
    }
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
      const spans = renderConversation(conversation, options.template, options);
      process.stdout.write(
        (style.colour ? colouredSpans(spans, options, style) : labelledSpans(spans, options)) + "\n\n",
      );
    }
  },
};
