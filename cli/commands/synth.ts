import type { Argv, CommandModule } from "yargs";
import { generateSynthetic, writeSyntheticJsonl } from "../../shared/data/synth.js";
import { inRange } from "../../shared/options.js";
import { checkOutputFile } from "../output-paths.js";

interface SynthFlags {
  out: string;
  examples: number;
  seed: number;
  instructionWords: number;
  outputWords: number;
}

export const synthCommand: CommandModule<object, SynthFlags> = {
  command: "synth",
  describe:
    "Write a synthetic, learnable Alpaca-style data set (JSONL) with chosen instruction/output lengths",
  builder: (yargs: Argv) =>
    yargs
      .option("out", { type: "string", demandOption: true, describe: "Output .jsonl file" })
      .option("examples", { type: "number", default: 1000, describe: "Number of records" })
      .option("seed", { type: "number", default: 0 })
      .option("instruction-words", {
        type: "number",
        default: 12,
        describe: "Mean instruction (+input) length in words",
      })
      .option("output-words", {
        type: "number",
        default: 4,
        describe: "Mean output length in words",
      }) as unknown as Argv<SynthFlags>,
  handler: async (argv) => {
    inRange("examples", argv.examples, 1, 1e8, true);
    await checkOutputFile("out", argv.out);
    const records = generateSynthetic({
      examples: argv.examples,
      seed: argv.seed,
      instructionWords: argv.instructionWords,
      outputWords: argv.outputWords,
    });
    writeSyntheticJsonl(argv.out, records);
    process.stderr.write(`wrote ${records.length} records to ${argv.out}\n`);
  },
};
