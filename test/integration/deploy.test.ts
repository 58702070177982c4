// deploy/k8s as kustomize renders it, checked against the real CLI and a real nats-server: every
// container's args parse strictly with the commands' own yargs builders (and the train flags compile),
// and the pieces agree: worker count, job name, NATS address, shared volume, GPUs, termination grace.
// Needs kubectl (kustomize is built in): off CI a missing kubectl skips, in CI it fails.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, join, posix, resolve } from "node:path";
import { test, type TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { connect } from "nats";
import { parseAllDocuments } from "yaml";
import yargs, { type Argv, type CommandModule } from "yargs";
import { coordinatorCommand } from "../../cli/commands/coordinator.js";
import { workerCommand } from "../../cli/commands/worker.js";
import { compileTrainOptions, type TrainFlags } from "../../shared/options.js";
import { freePort, requireNatsServer } from "../support/nats.js";
import { tempDir } from "../support/tiny.js";

/** The repository root, from dist/test/integration/. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const K8S_DIR = join(ROOT, "deploy/k8s");

// Just the fields of the rendered objects these tests read.
interface EnvVar {
  readonly name: string;
  readonly value?: string;
  readonly valueFrom?: { readonly fieldRef?: { readonly fieldPath: string } };
}
interface Container {
  readonly name: string;
  readonly image?: string;
  readonly args?: readonly unknown[];
  readonly env?: readonly EnvVar[];
  readonly ports?: readonly { readonly name?: string; readonly containerPort: number }[];
  readonly resources?: { readonly limits?: Readonly<Record<string, unknown>> };
  readonly volumeMounts?: readonly { readonly name: string; readonly mountPath: string }[];
}
interface Volume {
  readonly name: string;
  readonly persistentVolumeClaim?: { readonly claimName: string };
  readonly configMap?: { readonly name: string; readonly items?: unknown };
}
interface PodSpec {
  readonly restartPolicy?: string;
  readonly terminationGracePeriodSeconds?: number;
  readonly securityContext?: { readonly runAsNonRoot?: boolean };
  readonly containers: readonly Container[];
  readonly volumes?: readonly Volume[];
}
interface PodTemplate {
  readonly metadata?: { readonly labels?: Readonly<Record<string, string>> };
  readonly spec: PodSpec;
}
interface K8sObject {
  readonly kind: string;
  readonly metadata: { readonly name: string };
}
interface Job extends K8sObject {
  readonly spec: {
    readonly completionMode?: string;
    readonly completions?: number;
    readonly parallelism?: number;
    readonly template: PodTemplate;
  };
}
interface Deployment extends K8sObject {
  readonly spec: { readonly template: PodTemplate };
}
interface Service extends K8sObject {
  readonly spec: {
    readonly selector?: Readonly<Record<string, string>>;
    readonly ports: readonly {
      readonly name?: string;
      readonly port: number;
      readonly targetPort?: unknown;
    }[];
  };
}
interface ConfigMap extends K8sObject {
  readonly data?: Readonly<Record<string, string>>;
}
interface Pvc extends K8sObject {
  readonly spec: { readonly accessModes?: readonly string[] };
}

/** The rendered base, split by role. */
interface Rendered {
  readonly objects: readonly K8sObject[];
  readonly coordinator: Job;
  readonly workers: Job;
  readonly nats: Deployment;
}

let cached: Rendered | undefined;

/** `kubectl kustomize deploy/k8s`, or undefined after marking the test skipped (off CI) — or throws in CI. */
function render(t: TestContext): Rendered | undefined {
  if (cached !== undefined) return cached;
  const result = spawnSync("kubectl", ["kustomize", K8S_DIR], { encoding: "utf8", timeout: 60_000 });
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
    if (process.env["CI"] === "true")
      throw new Error("kubectl is not installed: CI must install it (.ci/run)");
    t.skip("kubectl not installed (apt-get install kubernetes-client)");
    return undefined;
  }
  if (result.error) throw result.error;
  assert.equal(result.status, 0, `kubectl kustomize ${K8S_DIR} failed:\n${result.stderr}`);
  const objects = parseAllDocuments(result.stdout).map((document) => {
    assert.deepEqual(document.errors, [], "kustomize printed invalid YAML");
    return document.toJS() as K8sObject;
  });
  const jobs = objects.filter((o): o is Job => o.kind === "Job");
  const byCommand = (command: string): Job => {
    const found = jobs.filter((job) => onlyContainer(job.spec.template).args?.[0] === command);
    assert.equal(found.length, 1, `one Job should run \`imtrain ${command}\`, found ${found.length}`);
    return found[0]!;
  };
  const natsDeployments = objects.filter(
    (o): o is Deployment =>
      o.kind === "Deployment" &&
      onlyContainer((o as Deployment).spec.template).image?.startsWith("nats:") === true,
  );
  assert.equal(natsDeployments.length, 1, "one Deployment should run the nats image");
  cached = {
    objects,
    coordinator: byCommand("coordinator"),
    workers: byCommand("worker"),
    nats: natsDeployments[0]!,
  };
  return cached;
}

function onlyContainer(template: PodTemplate): Container {
  assert.equal(template.spec.containers.length, 1, "each pod runs one container");
  return template.spec.containers[0]!;
}

function named<T extends K8sObject>(rendered: Rendered, kind: string, name: string): T {
  const found = rendered.objects.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(found, `no ${kind} named ${name}`);
  return found as T;
}

/**
 * A container's args as its process sees them: all strings, each `$(VAR)` expanded from the container's
 * env (as the kubelet does; an undefined variable would reach the CLI literally). Downward-API variables
 * get a sample value.
 */
function expandedArgs(container: Container): string[] {
  const args = container.args ?? [];
  const env = new Map((container.env ?? []).map((v) => [v.name, v]));
  return args.map((arg, i) => {
    assert.equal(
      typeof arg,
      "string",
      `${container.name} args[${i}] must be a string, not ${JSON.stringify(arg)}`,
    );
    return (arg as string).replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (_, name: string) => {
      const variable = env.get(name);
      assert.ok(variable, `${container.name}: $(${name}) is not in the container's env`);
      const field = variable.valueFrom?.fieldRef?.fieldPath;
      if (field === "metadata.name") return "imtrain-workers-0-x7k2p";
      if (field === "status.podIP") return "10.1.2.3";
      assert.ok(variable.value !== undefined, `${container.name}: $(${name}) has no value`);
      return variable.value;
    });
  });
}

/**
 * Parses `args` (after the command name) with the command's own yargs builder, strictly: an unknown
 * flag, a missing required flag or a bad choice throws. --help and --version are switched off, so they
 * cannot short-circuit the validation either.
 */
function parseStrict<T>(command: CommandModule<object, T>, args: readonly string[]): Record<string, unknown> {
  const builder = command.builder;
  assert.equal(typeof builder, "function", `${String(command.command)} has a builder function`);
  const parser = (builder as (y: Argv) => Argv<T>)(yargs([...args]));
  const argv = parser
    .help(false)
    .version(false)
    .strict()
    .fail((message: string, error: Error | undefined) => {
      throw new Error(`imtrain ${String(command.command)} ${args.join(" ")}: ${message ?? error?.message}`);
    })
    .parseSync() as Record<string, unknown>;
  assert.deepEqual(argv["_"], [], `stray positional arguments for ${String(command.command)}`);
  return argv;
}

/** Was `--flag` given on the command line (not just defaulted)? */
function given(args: readonly string[], flag: string): boolean {
  return args.some((arg) => arg === `--${flag}` || arg.startsWith(`--${flag}=`));
}

function coordinatorArgv(rendered: Rendered): Record<string, unknown> {
  return parseStrict(
    coordinatorCommand,
    expandedArgs(onlyContainer(rendered.coordinator.spec.template)).slice(1),
  );
}

function workerArgv(rendered: Rendered): Record<string, unknown> {
  return parseStrict(workerCommand, expandedArgs(onlyContainer(rendered.workers.spec.template)).slice(1));
}

/** The mountPath of the PVC `claimName` in this pod, if mounted. */
function pvcMountPath(template: PodTemplate, claimName: string): string | undefined {
  const volume = template.spec.volumes?.find((v) => v.persistentVolumeClaim?.claimName === claimName);
  if (volume === undefined) return undefined;
  return onlyContainer(template).volumeMounts?.find((m) => m.name === volume.name)?.mountPath;
}

function isUnder(path: string, dir: string): boolean {
  const relative = posix.relative(dir, path);
  return relative !== "" && !relative.startsWith("..") && !isAbsolute(relative);
}

test("deploy/k8s - renders NATS, the shared volume, a coordinator Job and an Indexed worker Job", (t) => {
  const rendered = render(t);
  if (rendered === undefined) return;
  const kinds = rendered.objects.map((o) => o.kind).sort();
  assert.deepEqual(kinds, ["ConfigMap", "Deployment", "Job", "Job", "PersistentVolumeClaim", "Service"]);
  assert.match(onlyContainer(rendered.nats.spec.template).image ?? "", /^nats:2\.10(\.|$)/);

  const pvc = named<Pvc>(rendered, "PersistentVolumeClaim", "imtrain-shared");
  assert.deepEqual(pvc.spec.accessModes, ["ReadWriteMany"], "pods on several nodes mount it read-write");

  // Both Jobs run the one imtrain image (as set by the kustomization's images), as a non-root user.
  const coordinator = onlyContainer(rendered.coordinator.spec.template);
  const worker = onlyContainer(rendered.workers.spec.template);
  assert.ok(coordinator.image !== undefined && coordinator.image !== "");
  assert.equal(worker.image, coordinator.image);
  for (const job of [rendered.coordinator, rendered.workers]) {
    assert.equal(job.spec.template.spec.restartPolicy, "Never", `${job.metadata.name}: restartPolicy`);
    assert.equal(
      job.spec.template.spec.securityContext?.runAsNonRoot,
      true,
      `${job.metadata.name}: non-root`,
    );
  }
  assert.equal(rendered.coordinator.spec.completions ?? 1, 1, "one coordinator");
  assert.equal(rendered.coordinator.spec.parallelism ?? 1, 1, "one coordinator");
});

test("deploy/k8s - every container's args parse strictly with the real CLI's flags", (t) => {
  const rendered = render(t);
  if (rendered === undefined) return;
  const coordinator = coordinatorArgv(rendered);
  // What the coordinator's handler compiles: every train flag validated, defaults filled.
  const options = compileTrainOptions(coordinator as unknown as TrainFlags);
  assert.ok(options.batchSize >= 1);
  const workers = coordinator["workers"];
  assert.ok(
    typeof workers === "number" && Number.isInteger(workers) && workers >= 1,
    `--workers ${String(workers)}`,
  );

  const worker = workerArgv(rendered);
  assert.match(String(worker["device"]), /^(cpu|gpu:\d+)$/, "--device is cpu or gpu:K");

  // Flags whose defaults are wrong in a cluster must be given explicitly.
  const coordinatorArgs = expandedArgs(onlyContainer(rendered.coordinator.spec.template));
  const workerArgs = expandedArgs(onlyContainer(rendered.workers.spec.template));
  for (const flag of ["nats", "workers", "job", "data", "out"])
    assert.ok(given(coordinatorArgs, flag), `the coordinator needs --${flag}`);
  for (const flag of ["nats", "job", "device", "name", "advertise-host"])
    assert.ok(given(workerArgs, flag), `a worker needs --${flag}`);
});

test("deploy/k8s - the worker Job runs the coordinator's --workers ranks at once, one GPU each", (t) => {
  const rendered = render(t);
  if (rendered === undefined) return;
  const workers = coordinatorArgv(rendered)["workers"];
  const spec = rendered.workers.spec;
  assert.equal(spec.completionMode, "Indexed");
  assert.equal(spec.completions, workers, "completions must equal the coordinator's --workers");
  assert.equal(spec.parallelism, workers, "parallelism must equal --workers: every rank runs at once");

  const container = onlyContainer(spec.template);
  const gpus = Number(container.resources?.limits?.["nvidia.com/gpu"]);
  assert.equal(gpus, 1, "each worker pod gets one GPU");
  // The pod sees only its own GPUs, numbered from 0.
  const gpu = /^gpu:(\d+)$/.exec(String(workerArgv(rendered)["device"]));
  assert.ok(gpu, "a GPU worker runs with --device gpu:K");
  assert.ok(Number(gpu[1]) < gpus, `--device ${gpu[0]} is not one of the pod's ${gpus} GPU(s)`);
});

test("deploy/k8s - --name and --advertise-host come from the pod's name and IP", (t) => {
  const rendered = render(t);
  if (rendered === undefined) return;
  const container = onlyContainer(rendered.workers.spec.template);
  const args = (container.args ?? []).map(String);
  const fieldOf = (flag: string): string | undefined => {
    const value = args[args.indexOf(`--${flag}`) + 1] ?? "";
    const variable = /^\$\(([A-Za-z_][A-Za-z0-9_]*)\)$/.exec(value)?.[1];
    return container.env?.find((v) => v.name === variable)?.valueFrom?.fieldRef?.fieldPath;
  };
  assert.equal(
    fieldOf("name"),
    "metadata.name",
    "--name $(VAR) with VAR from the downward API's metadata.name",
  );
  assert.equal(
    fieldOf("advertise-host"),
    "status.podIP",
    "--advertise-host $(VAR) with VAR from status.podIP",
  );
});

test("deploy/k8s - coordinator and workers share the job name, the NATS Service and the volume", (t) => {
  const rendered = render(t);
  if (rendered === undefined) return;
  const coordinator = coordinatorArgv(rendered);
  const worker = workerArgv(rendered);
  assert.equal(worker["job"], coordinator["job"], "--job must match");
  assert.equal(worker["nats"], coordinator["nats"], "--nats must match");

  // nats://SERVICE:PORT → the Service, its port → the NATS container's client port.
  const url = new URL(String(coordinator["nats"]));
  assert.equal(url.protocol, "nats:");
  const serviceName = url.hostname.split(".")[0]!;
  const service = named<Service>(rendered, "Service", serviceName);
  const port = service.spec.ports.find((p) => p.port === Number(url.port || "4222"));
  assert.ok(port, `Service ${serviceName} has no port ${url.port}`);
  const natsTemplate = rendered.nats.spec.template;
  for (const [key, value] of Object.entries(service.spec.selector ?? {}))
    assert.equal(natsTemplate.metadata?.labels?.[key], value, `Service ${serviceName} selects the NATS pods`);
  assert.ok(Object.keys(service.spec.selector ?? {}).length > 0, `Service ${serviceName} has a selector`);
  const target = port.targetPort ?? port.port;
  const containerPort = onlyContainer(natsTemplate).ports?.find((p) =>
    typeof target === "number" ? p.containerPort === target : p.name === target,
  );
  assert.equal(containerPort?.containerPort, 4222, "the Service port reaches nats-server's client port");

  // Same volume at the same path in both pods; the coordinator's paths live on it.
  const mount = pvcMountPath(rendered.coordinator.spec.template, "imtrain-shared");
  assert.ok(mount, "the coordinator mounts imtrain-shared");
  assert.equal(
    pvcMountPath(rendered.workers.spec.template, "imtrain-shared"),
    mount,
    "workers mount it at the same path",
  );
  for (const flag of ["data", "out"]) {
    const path = String(coordinator[flag]);
    assert.ok(isUnder(path, mount), `--${flag} ${path} must be on the shared volume (${mount})`);
  }
  for (const flag of ["model", "tokenizer", "eval-data", "resume"]) {
    const value = coordinator[flag];
    if (typeof value === "string" && isAbsolute(value))
      assert.ok(isUnder(value, mount), `--${flag} ${value} must be on the shared volume (${mount})`);
  }
});

test("deploy/k8s - termination grace outlasts the longest step (--worker-timeout-ms)", (t) => {
  const rendered = render(t);
  if (rendered === undefined) return;
  const workerTimeoutMs = Number(coordinatorArgv(rendered)["workerTimeoutMs"]);
  for (const job of [rendered.coordinator, rendered.workers]) {
    const graceS = job.spec.template.spec.terminationGracePeriodSeconds ?? 30;
    assert.ok(
      graceS * 1000 > workerTimeoutMs,
      `${job.metadata.name}: ${graceS} s of grace cannot finish a step of up to ${workerTimeoutMs} ms and checkpoint`,
    );
  }
});

test(
  "deploy/k8s - nats-server runs the ConfigMap's config and advertises a raised max_payload",
  { timeout: 30_000 },
  async (t) => {
    const rendered = render(t);
    if (rendered === undefined) return;
    // The config file --config names is a key of the ConfigMap mounted at its directory.
    const template = rendered.nats.spec.template;
    const args = (onlyContainer(template).args ?? []).map(String);
    const configPath = args[args.indexOf("--config") + 1];
    assert.ok(args.includes("--config") && configPath !== undefined, "nats-server is given --config");
    const mount = onlyContainer(template).volumeMounts?.find(
      (m) => m.mountPath === posix.dirname(configPath),
    );
    assert.ok(mount, `nothing is mounted at ${posix.dirname(configPath)}`);
    const volume = template.spec.volumes?.find((v) => v.name === mount.name);
    assert.ok(
      volume?.configMap && volume.configMap.items === undefined,
      "the config comes whole from a ConfigMap",
    );
    const config = named<ConfigMap>(rendered, "ConfigMap", volume.configMap.name).data?.[
      posix.basename(configPath)
    ];
    assert.ok(
      config !== undefined,
      `ConfigMap ${volume.configMap.name} has no key ${posix.basename(configPath)}`,
    );

    const binary = requireNatsServer(t);
    if (binary === undefined) return;
    const dir = tempDir("deploy-nats");
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, "nats.conf");
    writeFileSync(file, config);
    // Loopback and free ports on the command line, which override the file's.
    const [port, monitorPort] = [await freePort(), await freePort()];
    const child = spawn(
      binary,
      ["-c", file, "-a", "127.0.0.1", "-p", String(port), "-m", String(monitorPort)],
      {
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    // Ready once it logs so; a config it rejects makes it exit first.
    let stderr = "";
    const exited = new Promise<void>((resolvePromise) => child.once("close", () => resolvePromise()));
    t.after(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    });
    await new Promise<void>((resolvePromise, reject) => {
      child.stderr.setEncoding("utf8");
      child.stderr.on("data", (text: string) => {
        stderr += text;
        if (stderr.includes("Server is ready")) resolvePromise();
      });
      child.once("error", reject);
      child.once("close", () => reject(new Error(`nats-server exited:\n${stderr}`)));
    });
    const nc = await connect({ servers: `nats://127.0.0.1:${port}`, reconnect: false });
    try {
      const maxPayload = nc.info?.max_payload ?? 0;
      assert.ok(
        maxPayload > 1024 * 1024,
        `max_payload ${maxPayload} should be raised above the 1 MiB default`,
      );
      assert.ok(
        maxPayload <= 64 * 1024 * 1024,
        `max_payload ${maxPayload} is over nats-server's 64 MiB limit`,
      );
    } finally {
      await nc.close();
    }
  },
);
