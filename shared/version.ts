// imtrain's version, from package.json: two levels up from the compiled dist/shared/version.js.
import { readFileSync } from "node:fs";

export const IMTRAIN_VERSION: string = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
).version;
