// The bench scripts' flags (npm run bench, npm run gpu-check): node's parseArgs, with `--help` printing
// the script's usage and a flag it does not know being one line and exit 2, as in the CLI (parseArgs
// alone throws a TypeError, which would read as a bug in imtrain).
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UserError } from "../shared/errors.js";

type Options = NonNullable<ParseArgsConfig["options"]>;

export function parseBenchArgs<O extends Options>(options: O, usage: string) {
  if (process.argv.slice(2).some((arg) => arg === "--help" || arg === "-h")) {
    process.stdout.write(usage.trim() + "\n");
    process.exit(0);
  }
  try {
    return parseArgs({ options, strict: true }).values;
  } catch (error) {
    if ((error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS") === true)
      throw new UserError(`${(error as Error).message} (--help lists the flags)`);
    throw error;
  }
}
