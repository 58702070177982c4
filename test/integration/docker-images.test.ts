// deploy/docker/{cpu,cuda,vulkan}.Dockerfile without a Docker engine: their files are read, and what can
// run without Docker runs. The build stage's context, copied through .dockerignore, compiles with the
// project's own build command; the entrypoint, with the image's /app mapped to a directory here, prints
// the version; the health check, run the same way, answers for a live `imtrain train` (healthy, stopping,
// gone). The rest is read: users, base images, CUDA and cuDNN versions, the packages each image installs.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, posix, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { startCli } from "../support/cli.js";
import { freePort } from "../support/nats.js";
import { tempDir, writeMicroModelConfig, writeSyntheticData } from "../support/tiny.js";

/** The repository root, from dist/test/integration/. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const IMAGES = ["cpu", "cuda", "vulkan"] as const;
type ImageName = (typeof IMAGES)[number];
const PACKAGE = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  version: string;
  scripts: Record<string, string>;
};
/** Where the images keep the application; the tests map it to a directory on this machine. */
const APP = "/app";

// ---------------------------------------------------------------------------------------------------
// A Dockerfile reader. No Dockerfile parser is installed (node_modules has none) and dependencies cannot
// be added here, so this reads only the instructions the three files use, as Docker does: comment lines
// dropped (also inside a continued instruction), lines ending in `\` continued, leading `--flag=value`
// options split off, exec form (a JSON array) parsed. Anything else (ADD, ONBUILD, heredocs, another
// escape character) fails the test rather than being misread.

interface Instruction {
  readonly keyword: string;
  readonly flags: ReadonlyMap<string, string>;
  /** The arguments after the flags, continuation lines joined. */
  readonly text: string;
  /** Exec form (for HEALTHCHECK, what follows CMD). */
  readonly exec: readonly string[] | undefined;
  readonly line: number;
}

interface Stage {
  readonly name: string | undefined;
  /** The FROM image or stage, global ARG defaults substituted. */
  readonly from: string;
  readonly instructions: readonly Instruction[];
}

interface Dockerfile {
  readonly file: string;
  /** The global ARGs (before the first FROM) and their defaults. */
  readonly args: ReadonlyMap<string, string>;
  readonly stages: readonly Stage[];
}

const KEYWORDS = new Set([
  "ARG",
  "FROM",
  "WORKDIR",
  "COPY",
  "RUN",
  "ENV",
  "USER",
  "STOPSIGNAL",
  "HEALTHCHECK",
  "ENTRYPOINT",
  "CMD",
]);
const WITH_FLAGS = new Set(["FROM", "COPY", "RUN", "HEALTHCHECK"]);

function parseInstruction(file: string, text: string, line: number): Instruction {
  const match = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(text);
  assert.ok(match, `${file}:${line}: not an instruction: ${text}`);
  const keyword = match[1]!.toUpperCase();
  assert.ok(KEYWORDS.has(keyword), `${file}:${line}: ${keyword} is not an instruction this reader knows`);
  let rest = match[2]!.trim();
  assert.ok(!rest.includes("<<"), `${file}:${line}: heredocs are not read here`);
  const flags = new Map<string, string>();
  while (WITH_FLAGS.has(keyword)) {
    const flag = /^--([a-z-]+)(?:=(\S*))?\s+/.exec(rest);
    if (flag === null) break;
    flags.set(flag[1]!, flag[2] ?? "true");
    rest = rest.slice(flag[0].length);
  }
  let command = rest;
  if (keyword === "HEALTHCHECK") {
    assert.match(rest, /^CMD\s/, `${file}:${line}: HEALTHCHECK without CMD`);
    command = rest.slice(3).trim();
  }
  let exec: string[] | undefined;
  if (["CMD", "ENTRYPOINT", "RUN", "HEALTHCHECK"].includes(keyword) && command.startsWith("[")) {
    const parsed: unknown = JSON.parse(command);
    assert.ok(
      Array.isArray(parsed) && parsed.every((word) => typeof word === "string"),
      `${file}:${line}: exec form must be an array of strings`,
    );
    exec = parsed as string[];
  }
  return { keyword, flags, text: rest, exec, line };
}

function readDockerfile(file: string): Dockerfile {
  const lines = readFileSync(file, "utf8").split("\n");
  const instructions: Instruction[] = [];
  let pending = "";
  let start = 0;
  lines.forEach((line, i) => {
    if (line.trim() === "" || /^\s*#/.test(line)) return;
    if (pending === "") start = i + 1;
    const continued = /\\[ \t]*$/.exec(line);
    if (continued) pending += line.slice(0, continued.index);
    else {
      instructions.push(parseInstruction(file, pending + line, start));
      pending = "";
    }
  });
  assert.equal(pending, "", `${file} ends inside a continued instruction`);

  const args = new Map<string, string>();
  const stages: { name: string | undefined; from: string; instructions: Instruction[] }[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === "FROM") {
      const [image, as, name, ...extra] = instruction.text.split(/\s+/);
      assert.ok(image !== undefined && extra.length === 0 && (as === undefined || /^as$/i.test(as)));
      const from = image.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, braced?: string, bare?: string) => {
        const value = args.get(braced ?? bare ?? "");
        assert.ok(value !== undefined, `${file}:${instruction.line}: FROM uses an ARG with no default`);
        return value;
      });
      stages.push({ name, from, instructions: [] });
    } else if (stages.length === 0) {
      assert.equal(instruction.keyword, "ARG", `${file}:${instruction.line}: only ARG may precede FROM`);
      const [name, value] = instruction.text.split("=", 2);
      args.set(name!, value ?? "");
    } else stages.at(-1)!.instructions.push(instruction);
  }
  return { file, args, stages };
}

const DOCKERFILES = new Map<ImageName, Dockerfile>(
  IMAGES.map((name) => [name, readDockerfile(join(ROOT, "deploy/docker", `${name}.Dockerfile`))]),
);

function dockerfile(name: ImageName): Dockerfile {
  return DOCKERFILES.get(name)!;
}

function stageNamed(file: Dockerfile, name: string): Stage | undefined {
  return file.stages.find((stage) => stage.name === name);
}

function finalStage(file: Dockerfile): Stage {
  return file.stages.at(-1)!;
}

/** The stages whose layers the image is made of: the final stage, the stage it is FROM, and so on. */
function layers(file: Dockerfile, stage = finalStage(file)): Stage[] {
  const parent = stageNamed(file, stage.from);
  return parent === undefined ? [stage] : [...layers(file, parent), stage];
}

/** The image a stage starts from, through the stages it is FROM. */
function baseImage(file: Dockerfile, stage: Stage): string {
  return layers(file, stage)[0]!.from;
}

function only(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((instruction) => instruction.keyword === keyword);
}

function last(stages: readonly Stage[], keyword: string): Instruction | undefined {
  return stages.flatMap((stage) => only(stage, keyword)).at(-1);
}

/** COPY's sources and destination (whitespace-separated; the files quote nothing). */
function copyPaths(copy: Instruction): { sources: string[]; destination: string } {
  assert.ok(!/["']/.test(copy.text), `line ${copy.line}: quoted COPY paths are not read here`);
  const words = copy.text.split(/\s+/);
  assert.ok(words.length >= 2, `line ${copy.line}: COPY needs a source and a destination`);
  return { sources: words.slice(0, -1), destination: words.at(-1)! };
}

/** The working directory each instruction of `stage` runs in (inherited from the stage it is FROM). */
function workdirs(file: Dockerfile, stage: Stage): Map<Instruction, string> {
  const result = new Map<Instruction, string>();
  let workdir = "/";
  for (const layer of layers(file, stage))
    for (const instruction of layer.instructions) {
      if (instruction.keyword === "WORKDIR") workdir = posix.resolve(workdir, instruction.text);
      result.set(instruction, workdir);
    }
  return result;
}

/** Where COPY puts `source`: into a directory destination (ending in /) under its own name, else at it. */
function copiedTo(source: string, destination: string, workdir: string): string {
  const target = posix.resolve(workdir, destination);
  return destination.endsWith("/") && posix.basename(source) !== posix.basename(target)
    ? posix.join(target, posix.basename(source))
    : target;
}

/**
 * Which path of the build stage `path` in `stage` was copied from (following COPY --from and FROM
 * through the stages), or undefined if no stage put it there.
 */
function originInBuild(file: Dockerfile, stage: Stage, path: string): string | undefined {
  if (stage.name === "build") return path;
  const dirs = workdirs(file, stage);
  for (const copy of [...only(stage, "COPY")].reverse()) {
    const from = copy.flags.get("from");
    if (from === undefined) continue;
    for (const source of copyPaths(copy).sources)
      if (copiedTo(source, copyPaths(copy).destination, dirs.get(copy)!) === path) {
        const fromStage = stageNamed(file, from);
        assert.ok(fromStage, `${file.file}:${copy.line}: --from=${from} is not a stage`);
        return originInBuild(file, fromStage, source);
      }
  }
  const parent = stageNamed(file, stage.from);
  return parent === undefined ? undefined : originInBuild(file, parent, path);
}

/** `apt-get install` packages of a RUN. */
function aptPackages(run: Instruction): string[] {
  return [...run.text.matchAll(/apt-get install((?:\s+[^\s&;|]+)*)/g)].flatMap((match) =>
    match[1]!.split(/\s+/).filter((word) => word !== "" && !word.startsWith("-")),
  );
}

/** `npm install` packages of a RUN (not `npm ci`, which installs the lockfile). */
function npmPackages(run: Instruction): string[] {
  return [...run.text.matchAll(/npm install((?:\s+[^\s&;|]+)*)/g)].flatMap((match) =>
    match[1]!.split(/\s+/).filter((word) => word !== "" && !word.startsWith("-")),
  );
}

/** `rm -rf` paths of a RUN. */
function removed(run: Instruction): string[] {
  return [...run.text.matchAll(/rm -rf((?:\s+[^\s&;|]+)*)/g)].flatMap((match) =>
    match[1]!.split(/\s+/).filter((word) => word !== ""),
  );
}

function imagePackages(name: ImageName): string[] {
  return layers(dockerfile(name)).flatMap((stage) => only(stage, "RUN").flatMap(aptPackages));
}

function envValue(stages: readonly Stage[], name: string): string | undefined {
  const env = stages
    .flatMap((stage) => only(stage, "ENV"))
    .filter((instruction) => instruction.text.startsWith(`${name}=`))
    .at(-1);
  return env?.text.slice(name.length + 1);
}

// ---------------------------------------------------------------------------------------------------
// .dockerignore as Docker reads it (moby's patternmatcher): each pattern cleaned and anchored at the
// context's root; `*` and `?` stay within a path segment, `**` crosses them; a path is excluded when the
// last pattern matching it or one of its parent directories is not a `!` pattern.

function dockerignore(file: string): (path: string) => boolean {
  const patterns = readFileSync(file, "utf8")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const include = line.startsWith("!");
      const pattern = posix.normalize(line.slice(include ? 1 : 0).replace(/^\/+/, "")).replace(/\/$/, "");
      assert.ok(!/[[\]\\]/.test(pattern), `${file}: character classes and escapes are not read here`);
      const source = pattern
        .split(/(\*\*\/?|\*|\?)/)
        .map((part) =>
          part === "**/"
            ? "(?:.*/)?"
            : part === "**"
              ? ".*"
              : part === "*"
                ? "[^/]*"
                : part === "?"
                  ? "[^/]"
                  : part.replace(/[.+^${}()|]/g, "\\$&"),
        )
        .join("");
      return { include, regex: new RegExp(`^${source}$`) };
    });
  return (path) => {
    const prefixes = path.split("/").map((_, i, parts) => parts.slice(0, i + 1).join("/"));
    let excluded = false;
    for (const { include, regex } of patterns)
      if (prefixes.some((prefix) => regex.test(prefix))) excluded = !include;
    return excluded;
  };
}

const IGNORED = dockerignore(join(ROOT, ".dockerignore"));

/** Files under `dir` (relative to ROOT) that the build context keeps. */
function contextFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: "utf8" })
    .map((entry) => posix.join(dir, entry))
    .filter((path) => statSync(join(ROOT, path)).isFile() && !IGNORED(path));
}

// ---------------------------------------------------------------------------------------------------
// Running the images' command lines here: `/app/…` becomes `<dir>/…`, `node` this Node.js.

interface Run {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

function mapped(command: readonly string[], app: string): string[] {
  const [program, ...args] = command.map((word) => word.replaceAll(`${APP}/`, `${app}/`));
  assert.equal(program, "node", `the command runs node directly (no shell): ${command.join(" ")}`);
  return [process.execPath, ...args];
}

function run(
  command: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs: number },
): Promise<Run> {
  const [program, ...args] = command;
  return new Promise((resolvePromise, reject) => {
    const child = spawn(program!, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ["ignore", "pipe", "pipe"],
      timeout: options.timeoutMs,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("close", (status, signal) => resolvePromise({ status, signal, stdout, stderr }));
  });
}

function entrypoint(name: ImageName): readonly string[] {
  const instruction = last([finalStage(dockerfile(name))], "ENTRYPOINT");
  assert.ok(instruction?.exec, `${name}: ENTRYPOINT in exec form (so node is PID 1)`);
  return instruction.exec;
}

function healthcheck(name: ImageName): readonly string[] {
  const instruction = last([finalStage(dockerfile(name))], "HEALTHCHECK");
  assert.ok(instruction?.exec, `${name}: HEALTHCHECK CMD in exec form`);
  return instruction.exec;
}

// ---------------------------------------------------------------------------------------------------

/** An instruction as text, for comparing the files. */
function spelled(instruction: Instruction): string {
  const flags = [...instruction.flags].map(([flag, value]) => `--${flag}=${value} `).join("");
  return `${instruction.keyword} ${flags}${instruction.text}`;
}

test("docker images - the build stage, and everything from the user on, are the same in all three", () => {
  const build = IMAGES.map((name) => {
    const stage = stageNamed(dockerfile(name), "build");
    assert.ok(stage, `${name}: a stage named build`);
    return [`FROM ${stage.from}`, ...stage.instructions.map(spelled)];
  });
  assert.deepEqual(build[1], build[0], "cuda.Dockerfile's build stage differs from cpu's");
  assert.deepEqual(build[2], build[0], "vulkan.Dockerfile's build stage differs from cpu's");

  const tails = IMAGES.map((name) => {
    const instructions = finalStage(dockerfile(name)).instructions;
    const user = instructions.findIndex((i) => i.keyword === "RUN" && i.text.includes("useradd"));
    assert.ok(user >= 0, `${name}: the final stage creates the user`);
    return instructions.slice(user).map(spelled);
  });
  assert.deepEqual(tails[1], tails[0], "cuda.Dockerfile's final instructions differ from cpu's");
  assert.deepEqual(tails[2], tails[0], "vulkan.Dockerfile's final instructions differ from cpu's");
});

test("docker images - every COPY from the context names a path in the repository that .dockerignore keeps", () => {
  for (const name of IMAGES) {
    const file = dockerfile(name);
    for (const [index, stage] of file.stages.entries())
      for (const copy of only(stage, "COPY")) {
        const where = `${name}.Dockerfile:${copy.line}`;
        const from = copy.flags.get("from");
        if (from !== undefined) {
          const source = file.stages.findIndex((s) => s.name === from);
          assert.ok(source >= 0 && source < index, `${where}: --from=${from} is not an earlier stage`);
          continue;
        }
        for (const source of copyPaths(copy).sources) {
          const path = posix.normalize(source).replace(/\/$/, "");
          assert.ok(!path.startsWith(".."), `${where}: ${source} is outside the context`);
          assert.ok(existsSync(join(ROOT, path)), `${where}: ${source} is not in the repository`);
          assert.equal(IGNORED(path), false, `${where}: .dockerignore excludes ${source}`);
          if (statSync(join(ROOT, path)).isDirectory())
            assert.ok(contextFiles(path).length > 0, `${where}: .dockerignore leaves nothing of ${source}`);
        }
      }
  }
  // The matcher is Docker's: the allow-list keeps sources and drops what must not be sent.
  assert.equal(IGNORED("shared/model/gpt.ts"), false);
  for (const path of [
    "node_modules/yaml/package.json",
    "dist/cli/main.js",
    "runs/x/metrics.jsonl",
    ".git/HEAD",
  ])
    assert.equal(IGNORED(path), true, `${path} should not be in the build context`);
});

test(
  "docker images - the build stage's context compiles with the project's build command, and the images' /app comes out of it",
  { timeout: 180_000 },
  async (t) => {
    // The build stage, run here: its context COPYs (through .dockerignore) into a directory standing for
    // /app, the repository's node_modules standing in for `npm ci` (no registry here), then the build.
    const file = dockerfile("cpu");
    const build = stageNamed(file, "build")!;
    const app = tempDir("docker-app");
    t.after(() => rmSync(app, { recursive: true, force: true }));
    const dirs = workdirs(file, build);
    for (const copy of only(build, "COPY")) {
      const { sources, destination } = copyPaths(copy);
      for (const source of sources) {
        const path = posix.normalize(source).replace(/\/$/, "");
        const isDir = statSync(join(ROOT, path)).isDirectory();
        const target = isDir
          ? posix.resolve(dirs.get(copy)!, destination)
          : copiedTo(path, destination, dirs.get(copy)!);
        assert.ok(target.startsWith(`${APP}/`), `line ${copy.line}: the build stage copies into ${APP}`);
        for (const each of isDir ? contextFiles(path) : [path]) {
          const to = join(app, target.slice(APP.length + 1), isDir ? posix.relative(path, each) : "");
          mkdirSync(dirname(to), { recursive: true });
          copyFileSync(join(ROOT, each), to);
        }
      }
    }
    symlinkSync(join(ROOT, "node_modules"), join(app, "node_modules"));
    const runs = only(build, "RUN").map((r) => r.text);
    assert.ok(
      runs.some((text) => text.includes("npm run build")),
      "the build stage runs the project's build script",
    );
    const [tool, ...toolArgs] = PACKAGE.scripts["build"]!.split(/\s+/);
    assert.equal(tool, "tsc", "the build script is tsc");
    const compiled = await run(
      [process.execPath, join(ROOT, "node_modules/typescript/bin/tsc"), ...toolArgs],
      { cwd: app, timeoutMs: 150_000 },
    );
    assert.equal(
      compiled.status,
      0,
      `tsc failed on the build context:\n${compiled.stdout}${compiled.stderr}`,
    );

    // Every /app path an image's final stage copies comes out of this build stage.
    for (const name of IMAGES) {
      const image = dockerfile(name);
      const final = finalStage(image);
      for (const copy of only(final, "COPY")) {
        const stage = stageNamed(image, copy.flags.get("from") ?? "");
        assert.ok(stage, `${name}.Dockerfile:${copy.line}: the final stage copies from a stage`);
        for (const source of copyPaths(copy).sources) {
          const origin = originInBuild(image, stage, source);
          assert.ok(origin, `${name}.Dockerfile:${copy.line}: no stage puts ${source} in ${stage.name}`);
          assert.ok(
            origin.startsWith(`${APP}/`),
            `${name}.Dockerfile:${copy.line}: ${origin} is under ${APP}`,
          );
          assert.ok(
            existsSync(join(app, origin.slice(APP.length + 1))),
            `${name}.Dockerfile:${copy.line}: the build stage makes no ${origin}`,
          );
        }
      }
    }

    // And the entrypoint runs from it.
    const version = await run([...mapped(entrypoint("cpu"), app), "--version"], { timeoutMs: 60_000 });
    assert.equal(version.status, 0, version.stderr);
    assert.equal(version.stdout.trim(), PACKAGE.version);
  },
);

test(
  "docker images - the entrypoint is imtrain: `--version` prints package.json's version, the default CMD the help",
  { timeout: 120_000 },
  async () => {
    const commandLines = new Set(IMAGES.map((name) => JSON.stringify(entrypoint(name))));
    assert.equal(commandLines.size, 1, "one entrypoint for the three images");
    for (const name of IMAGES) {
      const cmd = last([finalStage(dockerfile(name))], "CMD");
      assert.deepEqual(cmd?.exec, ["--help"], `${name}: CMD ["--help"]`);
    }
    const command = mapped(entrypoint("cpu"), ROOT);
    const version = await run([...command, "--version"], { timeoutMs: 60_000 });
    assert.equal(version.status, 0, version.stderr);
    assert.equal(version.stdout.trim(), PACKAGE.version);
    const help = await run([...command, "--help"], { timeoutMs: 60_000 });
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /^imtrain <command>/, "the help of imtrain");
    assert.match(help.stdout, /imtrain worker/);
  },
);

test(
  "docker images - /usr/local/bin/imtrain links to the entrypoint's script, an executable node script",
  { timeout: 60_000 },
  async (t) => {
    const script = entrypoint("cpu")[1]!;
    const linked = IMAGES.map((name) =>
      finalStage(dockerfile(name))
        .instructions.filter((i) => i.keyword === "RUN")
        .map((i) => /ln -s (\S+) \/usr\/local\/bin\/imtrain\b/.exec(i.text)?.[1])
        .find((target) => target !== undefined),
    );
    assert.deepEqual(linked, [script, script, script], "each image links imtrain to the entrypoint's script");
    const build = only(stageNamed(dockerfile("cpu"), "build")!, "RUN").map((r) => r.text);
    const relative = posix.relative(APP, script);
    assert.ok(
      build.some((text) => text.includes(`chmod 755 ${relative}`)),
      `the build stage makes ${relative} executable`,
    );
    const built = join(ROOT, relative);
    assert.equal(
      readFileSync(built, "utf8").split("\n")[0],
      "#!/usr/bin/env node",
      "main.js starts with a shebang",
    );
    // Through a link, as /usr/local/bin/imtrain is: Node resolves the script's imports from its real path.
    const dir = tempDir("docker-bin");
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    symlinkSync(built, join(dir, "imtrain"));
    const version = await run([process.execPath, join(dir, "imtrain"), "--version"], { timeoutMs: 60_000 });
    assert.equal(version.status, 0, version.stderr);
    assert.equal(version.stdout.trim(), PACKAGE.version);
  },
);

test(
  "docker images - the health check answers for a live imtrain: 0 while serving, 1 once stopping or gone; SIGTERM checkpoints and exits 0",
  { timeout: 180_000 },
  async (t) => {
    const commandLines = new Set(IMAGES.map((name) => JSON.stringify(healthcheck(name))));
    assert.equal(commandLines.size, 1, "one health check for the three images");
    const command = mapped(healthcheck("cpu"), ROOT);
    /** The health check run as Docker would, with PID 1 played by `pid`. */
    const check = (pid: number) =>
      run(command, { env: { ...process.env, IMTRAIN_HEALTHCHECK_PID: String(pid) }, timeoutMs: 30_000 });

    const dir = tempDir("docker-health");
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const port = await freePort();
    const out = join(dir, "out");
    // The command line a container would run after the entrypoint (startCli runs `node dist/cli/main.js`).
    const train = startCli([
      "train",
      "--data",
      writeSyntheticData(dir, 40, 1),
      "--model",
      writeMicroModelConfig(dir),
      "--steps",
      "100000",
      "--batch-size",
      "4",
      "--backend",
      "wasm",
      "--metrics-port",
      String(port),
      "--metrics-linger-s",
      "3",
      "--out",
      out,
    ]);
    t.after(() => train.child.kill("SIGKILL"));
    const pid = train.child.pid!;
    await train.waitFor(/^step \d+\//m, 90_000);

    const healthy = await check(pid);
    assert.equal(healthy.status, 0, `healthy while training:\n${healthy.stdout}${healthy.stderr}`);
    assert.match(healthy.stdout, new RegExp(`127\\.0\\.0\\.1:${port}/healthz: 200 ok`));

    // The port from a --config file (relative to the process's working directory), as the CLI reads it.
    writeFileSync(join(dir, "flags.yaml"), `metrics-port: ${port}\n`);
    const configured = spawn(
      process.execPath,
      ["-e", "setInterval(() => {}, 1000)", "train", "--config", "flags.yaml"],
      {
        cwd: dir,
        stdio: "ignore",
      },
    );
    t.after(() => configured.kill("SIGKILL"));
    const fromConfig = await check(configured.pid!);
    assert.equal(fromConfig.status, 0, `the port from --config:\n${fromConfig.stdout}${fromConfig.stderr}`);
    assert.match(fromConfig.stdout, new RegExp(`:${port}/healthz: 200 ok`));

    // No --metrics-port: nothing to ask (this test process has none on its command line).
    const none = await check(process.pid);
    assert.equal(none.status, 0, none.stderr);
    assert.match(none.stdout, /no fixed --metrics-port/);

    // SIGTERM, as `docker stop` sends (STOPSIGNAL): the step finishes, a checkpoint is written, /healthz
    // says 503 while /metrics lingers, then the process exits 0.
    for (const name of IMAGES)
      assert.equal(
        last([finalStage(dockerfile(name))], "STOPSIGNAL")?.text,
        "SIGTERM",
        `${name}: STOPSIGNAL`,
      );
    train.child.kill("SIGTERM");
    await train.waitFor(/keeping \/metrics up/, 60_000);
    const stopping = await check(pid);
    assert.equal(stopping.status, 1, `unhealthy once stopping:\n${stopping.stdout}${stopping.stderr}`);
    assert.match(stopping.stdout, /: 503 stopping/);
    assert.equal(await train.exit, 0, `SIGTERM should exit 0:\n${train.stderr.slice(-2000)}`);
    assert.ok(existsSync(join(out, "checkpoint")), "SIGTERM leaves a checkpoint");

    // Gone: nothing listens on the port any more. The command line still names it (another process
    // whose /proc/PID/cmdline says --metrics-port PORT stands in for the exited one).
    const gone = spawn(
      process.execPath,
      ["-e", "setInterval(() => {}, 1000)", "train", "--metrics-port", String(port)],
      { stdio: "ignore" },
    );
    t.after(() => gone.kill("SIGKILL"));
    const refused = await check(gone.pid!);
    assert.equal(refused.status, 1, `unhealthy when nothing listens:\n${refused.stdout}${refused.stderr}`);
    assert.match(refused.stdout, /ECONNREFUSED/);
  },
);

test("docker images - each runs as a numeric non-root user it creates", () => {
  for (const name of IMAGES) {
    const file = dockerfile(name);
    const final = finalStage(file);
    const user = last(layers(file), "USER")?.text;
    assert.match(user ?? "", /^\d+:\d+$/, `${name}: USER uid:gid, numeric (runAsNonRoot checks it)`);
    const [uid, gid] = user!.split(":").map(Number);
    assert.ok(uid! > 0 && gid! > 0, `${name}: USER ${user} is not root`);
    const creates = final.instructions.find((i) => i.keyword === "RUN" && i.text.includes("useradd"));
    assert.match(
      creates?.text ?? "",
      new RegExp(`useradd --uid ${uid} --gid ${gid}\\b`),
      `${name}: creates uid ${uid}`,
    );
    assert.match(creates?.text ?? "", new RegExp(`groupadd --gid ${gid}\\b`), `${name}: creates gid ${gid}`);
    const order = final.instructions.map((i) => i.keyword);
    assert.ok(order.lastIndexOf("USER") < order.indexOf("ENTRYPOINT"), `${name}: USER before ENTRYPOINT`);
  }
});

/**
 * What @tensorflow/tfjs-node-gpu 4.22.0's libtensorflow 2.9.1 was built for: "Linux GPU (Ubuntu 14.04 or
 * higher and Cuda 11.2 w/ CUDNN v8)", CUDA Toolkit 11.2, cuDNN SDK 8.1.0 (tfjs-node's README at 4.22.0;
 * TensorFlow 2.9's tested build configurations say the same). NVIDIA's 11.2.2 cudnn8 images carry cuDNN 8.1.
 */
const TFJS_NODE_GPU = { version: "4.22.0", cuda: "11.2", cudnnMajor: "8" };

test("docker images - the documented base images; cuda's CUDA and cuDNN are what tfjs-node-gpu 4.22 was built for", () => {
  for (const name of IMAGES) {
    const file = dockerfile(name);
    assert.equal(stageNamed(file, "build")!.from, "node:20-bookworm-slim", `${name}: build on Node.js 20`);
  }
  assert.equal(baseImage(dockerfile("cpu"), finalStage(dockerfile("cpu"))), "node:20-bookworm-slim");
  assert.equal(baseImage(dockerfile("vulkan"), finalStage(dockerfile("vulkan"))), "node:20-bookworm-slim");

  const cuda = dockerfile("cuda");
  const base = baseImage(cuda, finalStage(cuda));
  assert.equal(base, "nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04");
  const tag = /^nvidia\/cuda:(\d+\.\d+)\.\d+-cudnn(\d+)-runtime-ubuntu[\d.]+$/.exec(base);
  assert.ok(tag, `${base} is an NVIDIA CUDA runtime image with cuDNN`);
  assert.equal(tag[1], TFJS_NODE_GPU.cuda, "CUDA version");
  assert.equal(tag[2], TFJS_NODE_GPU.cudnnMajor, "cuDNN major version");
  // Node.js in the CUDA image is the build stage's (node:20).
  const node = only(stageNamed(cuda, "runtime-base")!, "COPY").find((c) => c.flags.get("from") === "build");
  assert.equal(node?.text, "/usr/local/bin/node /usr/local/bin/node", "Node.js copied from the build stage");

  // The tfjs-node-gpu it installs is the one those versions are for, and matches the lockfile's tfjs-core.
  const installed = cuda.stages.flatMap((stage) => only(stage, "RUN").flatMap(npmPackages));
  assert.deepEqual(installed, [`@tensorflow/tfjs-node-gpu@${TFJS_NODE_GPU.version}`]);
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as {
    packages: Record<string, { version?: string }>;
  };
  assert.equal(
    lock.packages["node_modules/@tensorflow/tfjs-core"]?.version,
    TFJS_NODE_GPU.version,
    "tfjs-node-gpu must be the version of the lockfile's @tensorflow/tfjs-core",
  );
});

test("docker images - each installs the packages of its backend, and only those", () => {
  const final = (name: ImageName) => layers(dockerfile(name));
  const deps = (name: ImageName) => stageNamed(dockerfile(name), "deps")!;
  const removedIn = (name: ImageName) =>
    only(deps(name), "RUN")
      .flatMap(removed)
      .filter((path) => path.startsWith("node_modules/"));
  const npmIn = (name: ImageName) =>
    dockerfile(name).stages.flatMap((s) => only(s, "RUN").flatMap(npmPackages));
  const webgpu = ["node_modules/webgpu", "node_modules/@tensorflow/tfjs-backend-webgpu"];
  for (const name of IMAGES)
    assert.ok(
      final(name)
        .at(-1)!
        .instructions.some((i) => i.keyword === "COPY" && i.flags.get("from") === "deps"),
      `${name}: the image's node_modules come from its deps stage`,
    );

  // cpu: wasm. No system packages, no native TensorFlow, no Dawn.
  assert.deepEqual(imagePackages("cpu"), []);
  assert.deepEqual(npmIn("cpu"), []);
  assert.deepEqual(removedIn("cpu"), webgpu);

  // cuda: tfjs-node-gpu on the CUDA runtime; the compiler for its addon stays in the deps stage.
  assert.deepEqual(imagePackages("cuda"), [], "no system packages in the cuda image itself");
  assert.deepEqual(only(deps("cuda"), "RUN").flatMap(aptPackages), [
    "ca-certificates",
    "python3",
    "make",
    "g++",
  ]);
  assert.deepEqual(npmIn("cuda"), [`@tensorflow/tfjs-node-gpu@${TFJS_NODE_GPU.version}`]);
  assert.deepEqual(removedIn("cuda"), webgpu);
  assert.match(envValue(final("cuda"), "NVIDIA_DRIVER_CAPABILITIES") ?? "", /\bcompute\b/);

  // vulkan: Dawn and the Vulkan loader, and the graphics capability that brings the driver's Vulkan in.
  assert.deepEqual(imagePackages("vulkan"), ["libvulkan1", "libglvnd0", "libx11-6", "libxext6"]);
  assert.deepEqual(npmIn("vulkan"), []);
  for (const path of webgpu) assert.ok(!removedIn("vulkan").includes(path), `the vulkan image keeps ${path}`);
  const capabilities = (envValue(final("vulkan"), "NVIDIA_DRIVER_CAPABILITIES") ?? "").split(",");
  for (const capability of ["graphics", "compute", "utility"])
    assert.ok(capabilities.includes(capability), `vulkan: NVIDIA_DRIVER_CAPABILITIES has ${capability}`);
  // Dawn is an optional dependency the lockfile installs: what the vulkan image relies on.
  const manifest = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
    optionalDependencies?: Record<string, string>;
  };
  for (const name of ["webgpu", "@tensorflow/tfjs-backend-webgpu"])
    assert.ok(manifest.optionalDependencies?.[name], `${name} is an optional dependency of imtrain`);
  for (const name of IMAGES)
    assert.ok(
      !imagePackages(name).some((p) => /nvidia|cuda|mesa/.test(p)),
      `${name}: no driver in the image`,
    );
});
