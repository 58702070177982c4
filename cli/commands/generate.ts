import type { Argv, CommandModule } from "yargs";
import { BACKEND_NAMES, type BackendName } from "../../shared/backend/select.js";
import { readDataFile } from "../../shared/data/formats.js";
import { renderPrompt, TEMPLATE_NAMES, type TemplateName } from "../../shared/data/template.js";
import { OptionError } from "../../shared/errors.js";
import { inRange } from "../../shared/options.js";
import { generate } from "../../shared/model/generate.js";
import { loadModelForCommand } from "../model-command.js";

interface GenerateFlags {
  model: string;
  prompt?: string;
  data?: string;
  limit: number;
  template: string;
  tokenizer?: string;
  backend: string;
  maxNewTokens: number;
  temperature: number;
  topK: number;
  seed: number;
}

export const generateCommand: CommandModule<object, GenerateFlags> = {
  command: "generate",
  describe: "Complete a prompt (or each record of a data file) with a trained model",
  builder: (yargs: Argv) =>
    yargs
      .option("model", {
        type: "string",
        demandOption: true,
        describe: "Checkpoint directory, or a run directory (its checkpoint/)",
      })
      .option("prompt", { type: "string", describe: "An instruction to complete" })
      .option("data", { type: "string", describe: "A data file: complete each record's final turn" })
      .option("limit", { type: "number", default: 5, describe: "Records of --data to complete" })
      .option("template", { type: "string", default: "tulu", choices: TEMPLATE_NAMES })
      .option("tokenizer", { type: "string", describe: "Override the checkpoint's tokenizer" })
      .option("backend", { type: "string", default: "auto", choices: BACKEND_NAMES })
      .option("max-new-tokens", { type: "number", default: 128 })
      .option("temperature", { type: "number", default: 0, describe: "0 = greedy" })
      .option("top-k", { type: "number", default: 0, describe: "Sample among the k most likely (0 = all)" })
      .option("seed", { type: "number", default: 0 })
      .conflicts("prompt", "data") as unknown as Argv<GenerateFlags>,
  handler: async (argv) => {
    if (argv.prompt === undefined && argv.data === undefined)
      throw new OptionError("prompt", "give --prompt or --data");
    inRange("temperature", argv.temperature, 0, 100); // 0 = greedy; below 0 would invert the distribution
    inRange("top-k", argv.topK, 0, 1 << 30, true);
    inRange("max-new-tokens", argv.maxNewTokens, 1, 1 << 20, true);
    inRange("limit", argv.limit, 1, 1 << 30, true);
    inRange("seed", argv.seed, 0, 2 ** 31 - 1, true);
    const { model, tokenizer } = await loadModelForCommand(
      argv.model,
      argv.backend as BackendName,
      argv.tokenizer,
    );
    const conversations =
      argv.prompt !== undefined
        ? [
            {
              turns: [{ role: "user" as const, content: argv.prompt }],
              source: { file: "--prompt", line: 1 },
            },
          ]
        : readDataFile(argv.data ?? "", "auto").slice(0, argv.limit);
    for (const conversation of conversations) {
      const spans = renderPrompt(conversation, argv.template as TemplateName);
      // Keep the prompt's tail: the model's window must leave room for the reply.
      const ids = spans.flatMap((s) => (s.eos ? [tokenizer.eosId] : tokenizer.encode(s.text)));
      const window = Math.max(1, model.config.maxPositions - argv.maxNewTokens);
      const prompt = ids.slice(-window);
      const output = generate(model, prompt, { ...argv, eosId: tokenizer.eosId });
      process.stdout.write(
        JSON.stringify({
          source: `${conversation.source.file}:${conversation.source.line}`,
          completion: tokenizer.decode(output),
        }) + "\n",
      );
    }
  },
};
