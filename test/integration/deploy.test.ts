// deploy/k8s as kustomize renders each overlay (alone and with each component), checked against the
// Kubernetes and Prometheus-Operator schemas (kubernetes-models), the real CLI and a real nats-server:
// every imtrain command line parses strictly with the commands' own yargs builders (and the train flags
// compile), and the pieces agree: worker count, backend and device, GPUs, job name, NATS address and
// token, shared volume, termination grace, elastic recovery, ports, labels and selectors of Services,
// PodMonitors and NetworkPolicies, and the monitoring objects with deploy/prometheus and deploy/grafana.
// Needs kubectl (kustomize is built in): off CI a missing kubectl skips, in CI it fails.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, join, posix, relative, resolve } from "node:path";
import { test, type TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import * as monitoringModels from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import * as appsModels from "kubernetes-models/apps/v1";
import * as batchModels from "kubernetes-models/batch/v1";
import * as networkingModels from "kubernetes-models/networking.k8s.io/v1";
import * as coreModels from "kubernetes-models/v1";
import { connect } from "nats";
import { parse, parseAllDocuments } from "yaml";
import yargs, { type Argv, type CommandModule } from "yargs";
import { coordinatorCommand } from "../../cli/commands/coordinator.js";
import { synthCommand } from "../../cli/commands/synth.js";
import { workerCommand } from "../../cli/commands/worker.js";
import { compileTrainOptions, type TrainFlags } from "../../shared/options.js";
import { DASHBOARD_FILE } from "../support/dashboard.js";
import { freePort, requireNatsServer } from "../support/nats.js";
import { tempDir } from "../support/tiny.js";

/** The repository root, from dist/test/integration/. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const K8S_DIR = join(ROOT, "deploy/k8s");
const ALERTS_FILE = join(ROOT, "deploy/prometheus/alerts.yml");
const HELM_VALUES_FILE = join(K8S_DIR, "nats-helm-values.yaml");
/** Rendering runs kubectl; a test that does has this deadline. */
const KUBECTL_TEST = { timeout: 120_000 };

/** What each overlay must run: the image tag, the job's backend, the workers' device and GPUs each. */
const OVERLAYS = {
  "gpu-cuda": { imageTag: "0.1.0-cuda", backend: "tensorflow-gpu", device: "gpu:0", gpus: 1 },
  "gpu-vulkan": { imageTag: "0.1.0-vulkan", backend: "webgpu", device: "gpu:0", gpus: 1 },
  cpu: { imageTag: "0.1.0-cpu", backend: "wasm", device: "cpu", gpus: 0 },
  dev: { imageTag: "0.1.0-cpu", backend: "wasm", device: "cpu", gpus: 0 },
} as const;
type OverlayName = keyof typeof OVERLAYS;
const OVERLAY_NAMES = Object.keys(OVERLAYS) as OverlayName[];
/** Optional components (deploy/k8s/components/) a user adds to an overlay; each must compose with every one. */
const OPTIONAL_COMPONENTS = ["monitoring", "resume", "helm-nats"] as const;
type ComponentName = (typeof OPTIONAL_COMPONENTS)[number];

// Just the fields of the rendered objects these tests read.
interface EnvVar {
  readonly name: string;
  readonly value?: string;
  readonly valueFrom?: {
    readonly fieldRef?: { readonly fieldPath: string };
    readonly secretKeyRef?: { readonly name: string; readonly key: string };
  };
}
interface ContainerPort {
  readonly name?: string;
  readonly containerPort: number;
}
interface Container {
  readonly name: string;
  readonly image?: string;
  readonly args?: readonly unknown[];
  readonly env?: readonly EnvVar[];
  readonly ports?: readonly ContainerPort[];
  readonly resources?: {
    readonly requests?: Readonly<Record<string, unknown>>;
    readonly limits?: Readonly<Record<string, unknown>>;
  };
  readonly readinessProbe?: { readonly httpGet?: { readonly path?: string; readonly port?: unknown } };
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
  readonly securityContext?: {
    readonly runAsNonRoot?: boolean;
    readonly sysctls?: readonly { readonly name: string; readonly value: string }[];
  };
  readonly initContainers?: readonly Container[];
  readonly containers: readonly Container[];
  readonly volumes?: readonly Volume[];
}
type Labels = Readonly<Record<string, string>>;
interface PodTemplate {
  readonly metadata?: { readonly labels?: Labels };
  readonly spec: PodSpec;
}
interface K8sObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly labels?: Labels };
}
interface Job extends K8sObject {
  readonly spec: {
    readonly completionMode?: string;
    readonly completions?: number;
    readonly parallelism?: number;
    readonly backoffLimit?: number;
    readonly podFailurePolicy?: {
      readonly rules: readonly {
        readonly action: string;
        readonly onPodConditions?: readonly { readonly type: string }[];
      }[];
    };
    readonly template: PodTemplate;
  };
}
interface Deployment extends K8sObject {
  readonly spec: { readonly template: PodTemplate };
}
interface Service extends K8sObject {
  readonly spec: {
    readonly selector?: Labels;
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
interface LabelSelector {
  readonly matchLabels?: Labels;
  readonly matchExpressions?: readonly {
    readonly key: string;
    readonly operator: string;
    readonly values?: readonly string[];
  }[];
}
interface NetworkPolicyPeer {
  readonly podSelector?: LabelSelector;
  readonly namespaceSelector?: LabelSelector;
}
interface NetworkPolicy extends K8sObject {
  readonly spec: {
    readonly podSelector: LabelSelector;
    readonly policyTypes?: readonly string[];
    readonly ingress?: readonly {
      readonly from?: readonly NetworkPolicyPeer[];
      readonly ports?: readonly {
        readonly protocol?: string;
        readonly port?: unknown;
        readonly endPort?: number;
      }[];
    }[];
  };
}
interface PodMonitor extends K8sObject {
  readonly spec: {
    readonly selector: LabelSelector;
    readonly podMetricsEndpoints?: readonly {
      readonly port?: string;
      readonly path?: string;
      readonly honorLabels?: boolean;
    }[];
  };
}
interface PrometheusRule extends K8sObject {
  readonly spec: { readonly groups: readonly unknown[] };
}

/** One overlay as kustomize renders it, split by role. */
interface Rendered {
  readonly objects: readonly K8sObject[];
  readonly coordinator: Job;
  readonly workers: Job;
  /** The base's nats-server; absent with components/helm-nats (the Helm chart runs it). */
  readonly nats: Deployment | undefined;
}

const renderedCache = new Map<string, Rendered>();

/** `kubectl kustomize DIR`'s objects, or undefined after marking the test skipped (off CI) — or throws in CI. */
function kustomize(t: TestContext, dir: string): K8sObject[] | undefined {
  const result = spawnSync("kubectl", ["kustomize", dir], { encoding: "utf8", timeout: 60_000 });
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
    if (process.env["CI"] === "true")
      throw new Error("kubectl is not installed: CI must install it (.ci/run)");
    t.skip("kubectl not installed (apt-get install kubernetes-client)");
    return undefined;
  }
  if (result.error) throw result.error;
  assert.equal(result.status, 0, `kubectl kustomize ${dir} failed:\n${result.stderr}`);
  return parseAllDocuments(result.stdout).map((document) => {
    assert.deepEqual(document.errors, [], "kustomize printed invalid YAML");
    return document.toJS() as K8sObject;
  });
}

/**
 * An overlay, with `components` added the way a user adds them: in a kustomization of their own that
 * names the overlay as its resource (kustomize takes relative paths only, even outside its directory).
 */
function render(
  t: TestContext,
  overlay: OverlayName,
  components: readonly ComponentName[] = [],
): Rendered | undefined {
  const key = [overlay, ...components].join("+");
  const known = renderedCache.get(key);
  if (known !== undefined) return known;
  const overlayDir = join(K8S_DIR, "overlays", overlay);
  let objects: K8sObject[] | undefined;
  if (components.length === 0) objects = kustomize(t, overlayDir);
  else {
    const dir = tempDir("k8s-variant");
    try {
      const relativeTo = (path: string) => relative(dir, path);
      writeFileSync(
        join(dir, "kustomization.yaml"),
        [
          "apiVersion: kustomize.config.k8s.io/v1beta1",
          "kind: Kustomization",
          "resources:",
          `  - ${relativeTo(overlayDir)}`,
          "components:",
          ...components.map((name) => `  - ${relativeTo(join(K8S_DIR, "components", name))}`),
          "",
        ].join("\n"),
      );
      objects = kustomize(t, dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  if (objects === undefined) return undefined;
  const jobs = objects.filter((o): o is Job => o.kind === "Job");
  const byCommand = (command: string): Job => {
    const found = jobs.filter((job) => onlyContainer(job.spec.template).args?.[0] === command);
    assert.equal(found.length, 1, `${key}: one Job should run \`imtrain ${command}\`, found ${found.length}`);
    return found[0]!;
  };
  const natsDeployments = objects.filter(
    (o): o is Deployment =>
      o.kind === "Deployment" &&
      onlyContainer((o as Deployment).spec.template).image?.startsWith("nats:") === true,
  );
  assert.ok(natsDeployments.length <= 1, `${key}: at most one Deployment runs the nats image`);
  const rendered = {
    objects,
    coordinator: byCommand("coordinator"),
    workers: byCommand("worker"),
    nats: natsDeployments[0],
  };
  renderedCache.set(key, rendered);
  return rendered;
}

/** The base's own NATS: every overlay without components/helm-nats has it. */
function natsOf(rendered: Rendered): Deployment {
  assert.ok(rendered.nats, "one Deployment should run the nats image");
  return rendered.nats;
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

function ofKind<T extends K8sObject>(rendered: Rendered, kind: string): T[] {
  return rendered.objects.filter((o) => o.kind === kind) as T[];
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
 * flag, a missing required flag, a bad choice or a repeated flag throws. --help and --version are
 * switched off, so they cannot short-circuit the validation either.
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
  // A flag given twice (an overlay adding what the base already has) parses as an array.
  for (const [flag, value] of Object.entries(argv))
    assert.ok(
      !Array.isArray(value) || flag === "_",
      `--${flag} is given more than once: ${JSON.stringify(value)}`,
    );
  return argv;
}

/** The imtrain commands a manifest may run, by name (the first arg: the image's entrypoint is imtrain). */
const COMMANDS: Readonly<Record<string, CommandModule<object, never>>> = {
  coordinator: coordinatorCommand as unknown as CommandModule<object, never>,
  worker: workerCommand as unknown as CommandModule<object, never>,
  synth: synthCommand as unknown as CommandModule<object, never>,
};

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
  const relativePath = posix.relative(dir, path);
  return relativePath !== "" && !relativePath.startsWith("..") && !isAbsolute(relativePath);
}

/** Does a Kubernetes label selector select these labels? (An empty selector selects everything.) */
function selects(selector: LabelSelector, labels: Labels): boolean {
  const byLabels = Object.entries(selector.matchLabels ?? {}).every(([key, value]) => labels[key] === value);
  const byExpressions = (selector.matchExpressions ?? []).every(({ key, operator, values = [] }) => {
    const value = labels[key];
    if (operator === "In") return value !== undefined && values.includes(value);
    if (operator === "NotIn") return value === undefined || !values.includes(value);
    if (operator === "Exists") return value !== undefined;
    if (operator === "DoesNotExist") return value === undefined;
    throw new Error(`unknown label selector operator ${operator}`);
  });
  return byLabels && byExpressions;
}

/** A pod that opens a connection: its labels and namespace's (`undefined` namespace: the policy's own). */
interface Source {
  readonly labels: Labels;
  readonly namespaceLabels?: Labels;
}

/** Does a peer of a NetworkPolicy's `from` admit this source (Kubernetes' semantics for the three forms)? */
function peerAdmits(peer: NetworkPolicyPeer, source: Source): boolean {
  if (peer.namespaceSelector === undefined)
    return source.namespaceLabels === undefined && selects(peer.podSelector ?? {}, source.labels);
  if (source.namespaceLabels === undefined) return false; // the job's namespace is not `monitoring`
  return (
    selects(peer.namespaceSelector, source.namespaceLabels) && selects(peer.podSelector ?? {}, source.labels)
  );
}

/**
 * Would TCP from `source` to `port` of a pod labelled `target` be let in, given every NetworkPolicy? A pod
 * no Ingress policy selects admits everything; otherwise some rule must admit both the peer and the port.
 */
function admitted(policies: readonly NetworkPolicy[], target: Labels, source: Source, port: number): boolean {
  const governing = policies.filter(
    (p) => selects(p.spec.podSelector, target) && (p.spec.policyTypes ?? ["Ingress"]).includes("Ingress"),
  );
  if (governing.length === 0) return true;
  return governing.some((policy) =>
    (policy.spec.ingress ?? []).some((rule) => {
      const fromOk = rule.from === undefined || rule.from.some((peer) => peerAdmits(peer, source));
      const portOk =
        rule.ports === undefined ||
        rule.ports.some(
          (p) =>
            (p.protocol ?? "TCP") === "TCP" &&
            typeof p.port === "number" &&
            port >= p.port &&
            port <= (p.endPort ?? p.port),
        );
      return fromOk && portOk;
    }),
  );
}

/** Every Kubernetes and Prometheus-Operator kind the overlays may render, with its schema. */
const MODELS: readonly {
  readonly apiVersion: string;
  readonly kind: string;
  new (data: never): { validate(): void };
}[] = [
  coreModels.ConfigMap,
  coreModels.PersistentVolumeClaim,
  coreModels.Service,
  appsModels.Deployment,
  batchModels.Job,
  networkingModels.NetworkPolicy,
  monitoringModels.PodMonitor,
  monitoringModels.PrometheusRule,
];

/** Throws unless the object is one of MODELS and valid by its schema. */
function validateObject(object: K8sObject): void {
  const Model = MODELS.find((m) => m.apiVersion === object.apiVersion && m.kind === object.kind);
  assert.ok(Model, `no schema for ${object.apiVersion} ${object.kind} (add its kubernetes-models class)`);
  new Model(object as never).validate();
}

/** The NATS token every client presents: from which Secret and key, if any. */
function natsTokenSource(container: Container): { name: string; key: string } | undefined {
  return container.env?.find((v) => v.name === "NATS_TOKEN")?.valueFrom?.secretKeyRef;
}

/** The containers that run imtrain (the Jobs' containers and init containers). */
function imtrainContainers(rendered: Rendered): Container[] {
  return [rendered.coordinator, rendered.workers].flatMap((job) => [
    ...(job.spec.template.spec.initContainers ?? []),
    ...job.spec.template.spec.containers,
  ]);
}

/** The Job that `selector` selects the pods of, or undefined. */
function jobSelectedBy(rendered: Rendered, selector: LabelSelector): Job[] {
  return [rendered.coordinator, rendered.workers].filter((job) =>
    selects(selector, job.spec.template.metadata?.labels ?? {}),
  );
}

function labelsOf(template: PodTemplate): Labels {
  return template.metadata?.labels ?? {};
}

for (const overlay of OVERLAY_NAMES) {
  const expected = OVERLAYS[overlay];

  test(
    `deploy/k8s ${overlay} - renders NATS, the volume, two Jobs of one image and the NetworkPolicies`,
    KUBECTL_TEST,
    (t) => {
      const rendered = render(t, overlay);
      if (rendered === undefined) return;
      const kinds = rendered.objects.map((o) => o.kind).sort();
      assert.deepEqual(kinds, [
        "ConfigMap",
        "Deployment",
        "Job",
        "Job",
        "NetworkPolicy",
        "NetworkPolicy",
        "NetworkPolicy",
        "PersistentVolumeClaim",
        "Service",
      ]);
      assert.match(onlyContainer(natsOf(rendered).spec.template).image ?? "", /^nats:2\.10(\.|$)/);

      const pvc = named<Pvc>(rendered, "PersistentVolumeClaim", "imtrain-shared");
      // Pods on several nodes mount it read-write; dev's pods share one node, where ReadWriteOnce does.
      assert.deepEqual(pvc.spec.accessModes, [overlay === "dev" ? "ReadWriteOnce" : "ReadWriteMany"]);

      // Every imtrain container runs the overlay's image (as its images: entry sets it), as a non-root user.
      for (const container of imtrainContainers(rendered))
        assert.match(
          container.image ?? "",
          new RegExp(`(^|/)imtrain:${expected.imageTag}$`),
          `${container.name}'s image`,
        );
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
      assert.ok(
        !rendered.objects.some((o) => o.kind === "Secret"),
        "no Secret is committed: the user creates it",
      );
    },
  );

  test(
    `deploy/k8s ${overlay} - every object is valid by the Kubernetes and Prometheus-Operator schemas`,
    KUBECTL_TEST,
    (t) => {
      for (const components of [[], ...OPTIONAL_COMPONENTS.map((c) => [c])] as ComponentName[][]) {
        const rendered = render(t, overlay, components);
        if (rendered === undefined) return;
        for (const object of rendered.objects)
          assert.doesNotThrow(
            () => validateObject(object),
            `${[overlay, ...components].join("+")}: ${object.kind} ${object.metadata.name}`,
          );
      }
    },
  );

  test(
    `deploy/k8s ${overlay} - every imtrain command line parses strictly with the real CLI's flags`,
    KUBECTL_TEST,
    (t) => {
      const rendered = render(t, overlay);
      if (rendered === undefined) return;
      for (const container of imtrainContainers(rendered)) {
        const args = expandedArgs(container);
        const command = COMMANDS[args[0] ?? ""];
        assert.ok(
          command,
          `${container.name} runs \`imtrain ${args[0]}\`, which is not a command this test knows`,
        );
        parseStrict(command, args.slice(1));
      }
      const coordinator = coordinatorArgv(rendered);
      // What the coordinator's handler compiles: every train flag validated, defaults filled.
      const options = compileTrainOptions(coordinator as unknown as TrainFlags);
      assert.ok(options.batchSize >= 1);
      const workers = coordinator["workers"];
      assert.ok(
        typeof workers === "number" && Number.isInteger(workers) && workers >= 1,
        `--workers ${String(workers)}`,
      );

      // Flags whose defaults are wrong in a cluster must be given explicitly.
      const coordinatorArgs = expandedArgs(onlyContainer(rendered.coordinator.spec.template));
      const workerArgs = expandedArgs(onlyContainer(rendered.workers.spec.template));
      for (const flag of ["nats", "workers", "job", "data", "out", "backend", "metrics-port", "metrics-host"])
        assert.ok(given(coordinatorArgs, flag), `the coordinator needs --${flag}`);
      for (const flag of ["nats", "job", "device", "name", "advertise-host", "metrics-port", "metrics-host"])
        assert.ok(given(workerArgs, flag), `a worker needs --${flag}`);
    },
  );

  test(
    `deploy/k8s ${overlay} - the job's backend is ${expected.backend}, each worker's device ${expected.device} with ${expected.gpus} GPU(s)`,
    KUBECTL_TEST,
    (t) => {
      const rendered = render(t, overlay);
      if (rendered === undefined) return;
      assert.equal(coordinatorArgv(rendered)["backend"], expected.backend);
      const device = String(workerArgv(rendered)["device"]);
      assert.equal(device, expected.device);

      const container = onlyContainer(rendered.workers.spec.template);
      const gpus = Number(container.resources?.limits?.["nvidia.com/gpu"] ?? 0);
      assert.equal(gpus, expected.gpus, "nvidia.com/gpu per worker pod");
      // The pod sees only its own GPUs, numbered from 0.
      const gpu = /^gpu:(\d+)$/.exec(device);
      if (gpu) assert.ok(Number(gpu[1]) < gpus, `--device ${device} is not one of the pod's ${gpus} GPU(s)`);
      // The coordinator needs no GPU, whatever the workers run.
      const coordinatorResources = onlyContainer(rendered.coordinator.spec.template).resources;
      assert.equal(
        coordinatorResources?.limits?.["nvidia.com/gpu"],
        undefined,
        "the coordinator requests no GPU",
      );

      const capabilities = container.env?.find((v) => v.name === "NVIDIA_DRIVER_CAPABILITIES")?.value;
      if (expected.backend === "webgpu")
        assert.ok(
          capabilities?.split(",").includes("graphics"),
          "Vulkan needs the NVIDIA runtime's graphics capability (NVIDIA_DRIVER_CAPABILITIES)",
        );
      else assert.equal(capabilities, undefined, "only the Vulkan overlay changes the driver capabilities");
    },
  );

  test(
    `deploy/k8s ${overlay} - the worker Job runs --workers ranks at once and replaces a lost one`,
    KUBECTL_TEST,
    (t) => {
      const rendered = render(t, overlay);
      if (rendered === undefined) return;
      const coordinator = coordinatorArgv(rendered);
      const workers = Number(coordinator["workers"]);
      const spec = rendered.workers.spec;
      assert.equal(spec.completionMode, "Indexed");
      assert.equal(spec.completions, workers, "completions must equal the coordinator's --workers");
      assert.equal(spec.parallelism, workers, "parallelism must equal --workers: every rank runs at once");

      // The job goes on after a loss only if --min-workers is below --workers.
      const minWorkers = Number(coordinator["minWorkers"]);
      assert.ok(
        minWorkers >= 1 && minWorkers < workers,
        `--min-workers ${minWorkers} of --workers ${workers}`,
      );
      // A failed pod is replaced (a new pod, hence a new --name, joins as a replacement) as long as the
      // coordinator would still recover: Kubernetes must not fail the Job, killing the survivors, first.
      const maxRestarts = Number(coordinator["maxRestarts"]);
      assert.ok(
        (spec.backoffLimit ?? 6) > maxRestarts,
        `backoffLimit ${spec.backoffLimit} must exceed the coordinator's --max-restarts ${maxRestarts}`,
      );
      assert.equal(spec.template.spec.restartPolicy, "Never", "podFailurePolicy needs restartPolicy Never");
      const ignoresDisruptions = spec.podFailurePolicy?.rules.some(
        (rule) =>
          rule.action === "Ignore" && rule.onPodConditions?.some((c) => c.type === "DisruptionTarget"),
      );
      assert.ok(
        ignoresDisruptions,
        "an evicted or preempted worker is replaced without counting as a failure",
      );
      // The coordinator is not retried from scratch: it is resumed (components/resume).
      assert.equal(rendered.coordinator.spec.backoffLimit, 0, "the coordinator Job's backoffLimit");
    },
  );

  test(
    `deploy/k8s ${overlay} - --name and --advertise-host come from the pod's name and IP`,
    KUBECTL_TEST,
    (t) => {
      const rendered = render(t, overlay);
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
    },
  );

  test(
    `deploy/k8s ${overlay} - coordinator and workers share the job name, the NATS Service and token, and the volume`,
    KUBECTL_TEST,
    (t) => {
      const rendered = render(t, overlay);
      if (rendered === undefined) return;
      const coordinator = coordinatorArgv(rendered);
      const worker = workerArgv(rendered);
      assert.equal(worker["job"], coordinator["job"], "--job must match");
      assert.equal(worker["nats"], coordinator["nats"], "--nats must match");

      // nats://SERVICE:PORT → the Service, its port → the NATS container's client port.
      const url = new URL(String(coordinator["nats"]));
      assert.equal(url.protocol, "nats:");
      assert.equal(
        url.username + url.password,
        "",
        "no credentials in --nats: the token comes from the Secret",
      );
      const serviceName = url.hostname.split(".")[0]!;
      const service = named<Service>(rendered, "Service", serviceName);
      const port = service.spec.ports.find((p) => p.port === Number(url.port || "4222"));
      assert.ok(port, `Service ${serviceName} has no port ${url.port}`);
      const natsTemplate = natsOf(rendered).spec.template;
      assert.ok(Object.keys(service.spec.selector ?? {}).length > 0, `Service ${serviceName} has a selector`);
      assert.ok(
        selects({ matchLabels: service.spec.selector ?? {} }, labelsOf(natsTemplate)),
        `Service ${serviceName} selects the NATS pods`,
      );
      const target = port.targetPort ?? port.port;
      const containerPort = onlyContainer(natsTemplate).ports?.find((p) =>
        typeof target === "number" ? p.containerPort === target : p.name === target,
      );
      assert.equal(containerPort?.containerPort, 4222, "the Service port reaches nats-server's client port");

      // One token for the server and every client, from the Secret the user creates.
      const tokenSource = natsTokenSource(onlyContainer(natsTemplate));
      assert.deepEqual(tokenSource, { name: "imtrain-nats", key: "token" }, "nats-server's $NATS_TOKEN");
      for (const container of [rendered.coordinator, rendered.workers].map((job) =>
        onlyContainer(job.spec.template),
      ))
        assert.deepEqual(natsTokenSource(container), tokenSource, `${container.name}'s $NATS_TOKEN`);

      // Same volume at the same path in every pod; the coordinator's paths live on it.
      const mount = pvcMountPath(rendered.coordinator.spec.template, "imtrain-shared");
      assert.ok(mount, "the coordinator mounts imtrain-shared");
      assert.equal(
        pvcMountPath(rendered.workers.spec.template, "imtrain-shared"),
        mount,
        "workers mount it at the same path",
      );
      for (const init of rendered.coordinator.spec.template.spec.initContainers ?? [])
        assert.ok(
          init.volumeMounts?.some((m) => m.mountPath === mount),
          `init container ${init.name} mounts ${mount}`,
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
    },
  );

  test(
    `deploy/k8s ${overlay} - termination grace outlasts the longest step (--worker-timeout-ms)`,
    KUBECTL_TEST,
    (t) => {
      const rendered = render(t, overlay);
      if (rendered === undefined) return;
      const workerTimeoutMs = Number(coordinatorArgv(rendered)["workerTimeoutMs"]);
      for (const job of [rendered.coordinator, rendered.workers]) {
        const graceS = job.spec.template.spec.terminationGracePeriodSeconds ?? 30;
        assert.ok(
          graceS * 1000 > workerTimeoutMs,
          `${job.metadata.name}: ${graceS} s of grace cannot finish a step of up to ${workerTimeoutMs} ms and checkpoint`,
        );
      }
    },
  );

  test(
    `deploy/k8s ${overlay} - metrics ports, probes, PodMonitors and NetworkPolicies agree`,
    KUBECTL_TEST,
    (t) => {
      const rendered = render(t, overlay, ["monitoring"]);
      if (rendered === undefined) return;
      const jobs = [rendered.coordinator, rendered.workers];
      // Each process serves --metrics-port on all interfaces, as a container port named `metrics` that its
      // readiness probe (/healthz) uses.
      const metricsPorts = new Map<Job, number>();
      for (const job of jobs) {
        const container = onlyContainer(job.spec.template);
        const args = expandedArgs(container);
        const argv = parseStrict(COMMANDS[args[0]!]!, args.slice(1));
        assert.equal(argv["metricsHost"], "0.0.0.0", `${job.metadata.name}: --metrics-host`);
        const declared = container.ports?.find((p) => p.name === "metrics");
        assert.equal(
          declared?.containerPort,
          argv["metricsPort"],
          `${job.metadata.name}: the metrics port is --metrics-port`,
        );
        assert.deepEqual(container.readinessProbe?.httpGet, { path: "/healthz", port: "metrics" });
        metricsPorts.set(job, Number(argv["metricsPort"]));
      }

      // One PodMonitor per Job's pods, scraping the named port with imtrain's own `job` label.
      const monitors = ofKind<PodMonitor>(rendered, "PodMonitor");
      for (const job of jobs) {
        const scraping: PodMonitor[] = monitors.filter((m) =>
          jobSelectedBy(rendered, m.spec.selector).includes(job),
        );
        assert.equal(scraping.length, 1, `one PodMonitor scrapes ${job.metadata.name}'s pods`);
        assert.deepEqual(jobSelectedBy(rendered, scraping[0]!.spec.selector), [job], "and only them");
        for (const endpoint of scraping[0]!.spec.podMetricsEndpoints ?? []) {
          assert.equal(endpoint.port, "metrics");
          assert.equal(endpoint.path, "/metrics");
          assert.equal(
            endpoint.honorLabels,
            true,
            "the series' own `job` label must win over the scrape job's",
          );
        }
        assert.equal(scraping[0]!.spec.podMetricsEndpoints?.length, 1);
      }

      // Who may connect where: the job's pods to each other, Prometheus to metrics, nobody else.
      const policies = ofKind<NetworkPolicy>(rendered, "NetworkPolicy");
      const coordinatorPod: Source = { labels: labelsOf(rendered.coordinator.spec.template) };
      const workerPod: Source = { labels: labelsOf(rendered.workers.spec.template) };
      const outsider: Source = { labels: { "app.kubernetes.io/name": "something-else" } };
      const prometheus: Source = {
        labels: { "app.kubernetes.io/name": "prometheus" },
        namespaceLabels: { "kubernetes.io/metadata.name": "monitoring" },
      };
      const elsewhere: Source = {
        labels: coordinatorPod.labels,
        namespaceLabels: { "kubernetes.io/metadata.name": "default" },
      };

      const natsTemplate = natsOf(rendered).spec.template;
      const clientPort =
        onlyContainer(natsTemplate).ports?.find((p) => p.name === "client")?.containerPort ?? 0;
      for (const source of [coordinatorPod, workerPod])
        assert.ok(
          admitted(policies, labelsOf(natsTemplate), source, clientPort),
          "the job's pods reach NATS",
        );
      for (const source of [outsider, prometheus, elsewhere])
        assert.ok(
          !admitted(policies, labelsOf(natsTemplate), source, clientPort),
          `NATS refuses ${JSON.stringify(source)}`,
        );

      for (const job of jobs) {
        const target = labelsOf(job.spec.template);
        const port = metricsPorts.get(job)!;
        for (const source of [coordinatorPod, workerPod, prometheus])
          assert.ok(
            admitted(policies, target, source, port),
            `${job.metadata.name}'s metrics from ${JSON.stringify(source)}`,
          );
        for (const source of [outsider, elsewhere])
          assert.ok(
            !admitted(policies, target, source, port),
            `${job.metadata.name} refuses ${JSON.stringify(source)}`,
          );
      }

      // --data-plane ws: a worker's ring listener takes an ephemeral port, from the range the pod pins.
      const range = rendered.workers.spec.template.spec.securityContext?.sysctls?.find(
        (s) => s.name === "net.ipv4.ip_local_port_range",
      );
      assert.ok(range, "the worker pods pin net.ipv4.ip_local_port_range");
      const [low, high] = range.value.split(/\s+/).map(Number) as [number, number];
      assert.ok(low > 9400 && high > low && high < 65536, `port range ${range.value}`);
      const workerLabels = labelsOf(rendered.workers.spec.template);
      for (const port of [low, Math.floor((low + high) / 2), high]) {
        assert.ok(
          admitted(policies, workerLabels, workerPod, port),
          `workers reach each other's ws port ${port}`,
        );
        for (const source of [coordinatorPod, outsider, prometheus])
          assert.ok(
            !admitted(policies, workerLabels, source, port),
            `a worker's ws port ${port} refuses ${JSON.stringify(source)}`,
          );
      }
      assert.ok(!admitted(policies, workerLabels, workerPod, low - 1), "ports outside the range stay closed");
    },
  );

  test(
    `deploy/k8s ${overlay} - the monitoring component carries deploy/prometheus's rules and deploy/grafana's dashboard`,
    KUBECTL_TEST,
    (t) => {
      const rendered = render(t, overlay, ["monitoring"]);
      if (rendered === undefined) return;
      const dashboards = ofKind<ConfigMap>(rendered, "ConfigMap").filter(
        (c) => c.metadata.labels?.["grafana_dashboard"] === "1",
      );
      assert.equal(dashboards.length, 1, "one ConfigMap for Grafana's dashboard sidecar");
      const files = Object.entries(dashboards[0]!.data ?? {});
      assert.equal(files.length, 1);
      assert.equal(files[0]![1], readFileSync(DASHBOARD_FILE, "utf8"), "the dashboard, byte for byte");

      const rules = ofKind<PrometheusRule>(rendered, "PrometheusRule");
      assert.equal(rules.length, 1);
      const alerts = parse(readFileSync(ALERTS_FILE, "utf8")) as { groups: unknown[] };
      assert.deepEqual(rules[0]!.spec.groups, alerts.groups, "the PrometheusRule's groups are alerts.yml's");
    },
  );

  test(`deploy/k8s ${overlay} - components/resume continues the run in --out`, KUBECTL_TEST, (t) => {
    const rendered = render(t, overlay, ["resume"]);
    if (rendered === undefined) return;
    const coordinator = coordinatorArgv(rendered);
    assert.equal(coordinator["resume"], coordinator["out"], "--resume names the run --out writes");
  });

  test(
    `deploy/k8s ${overlay} - components/helm-nats leaves NATS to the Helm chart, configured as the base's`,
    KUBECTL_TEST,
    (t) => {
      const rendered = render(t, overlay, ["helm-nats"]);
      if (rendered === undefined) return;
      assert.equal(rendered.nats, undefined, "no nats-server of the base's");
      for (const kind of ["ConfigMap", "Service"])
        assert.ok(
          !rendered.objects.some((o) => o.kind === kind && o.metadata.name === "imtrain-nats"),
          `no ${kind} imtrain-nats`,
        );

      const values = parse(readFileSync(HELM_VALUES_FILE, "utf8")) as HelmValues;
      const url = new URL(String(coordinatorArgv(rendered)["nats"]));
      assert.equal(
        values.service.name,
        url.hostname.split(".")[0],
        "the chart's Service is the Jobs' --nats host",
      );
      assert.equal(url.port || "4222", "4222", "the chart's client port");
      // The chart labels its pods with its name (nats) and the release's, which `helm install` names like the
      // Service: the NATS NetworkPolicy must select those pods now.
      const policy = named<NetworkPolicy>(rendered, "NetworkPolicy", "imtrain-nats");
      const chartPod = {
        "app.kubernetes.io/name": "nats",
        "app.kubernetes.io/instance": values.fullnameOverride,
      };
      assert.ok(
        selects(policy.spec.podSelector, chartPod),
        "the NATS NetworkPolicy selects the chart's pods",
      );
      const tokenSource = values.container.env["NATS_TOKEN"]?.valueFrom.secretKeyRef;
      for (const container of [rendered.coordinator, rendered.workers].map((job) =>
        onlyContainer(job.spec.template),
      ))
        assert.deepEqual(
          natsTokenSource(container),
          tokenSource,
          `${container.name} and the chart share the token`,
        );
      assert.equal(
        values.config.merge.authorization.token,
        "<< $NATS_TOKEN >>",
        "the chart's server requires $NATS_TOKEN",
      );
    },
  );
}

/** The fields of deploy/k8s/nats-helm-values.yaml these tests read. */
interface HelmValues {
  readonly fullnameOverride: string;
  readonly service: { readonly name: string };
  readonly config: {
    readonly merge: { readonly max_payload: number; readonly authorization: { readonly token: string } };
  };
  readonly container: {
    readonly env: Readonly<
      Record<string, { readonly valueFrom: { readonly secretKeyRef: { name: string; key: string } } }>
    >;
  };
}

test("deploy/k8s - the schemas refuse a broken Job and a broken PodMonitor", KUBECTL_TEST, (t) => {
  const rendered = render(t, "gpu-cuda", ["monitoring"]);
  if (rendered === undefined) return;
  // A string where a port number belongs, as a hand-edited manifest might have it.
  const job = structuredClone(rendered.workers) as unknown as {
    spec: { template: { spec: { containers: { ports: { containerPort: unknown }[] }[] } } };
  };
  job.spec.template.spec.containers[0]!.ports[0]!.containerPort = "9400";
  assert.throws(() => validateObject(job as unknown as K8sObject), /containerPort|integer/);
  // completionMode is an enum.
  const indexed = structuredClone(rendered.workers) as unknown as { spec: { completionMode: string } };
  indexed.spec.completionMode = "indexed";
  assert.throws(() => validateObject(indexed as unknown as K8sObject), /completionMode|allowed/);
  // A PodMonitor's honorLabels is a boolean.
  const monitor = structuredClone(ofKind<PodMonitor>(rendered, "PodMonitor")[0]!) as unknown as {
    spec: { podMetricsEndpoints: { honorLabels: unknown }[] };
  };
  monitor.spec.podMetricsEndpoints[0]!.honorLabels = "true";
  assert.throws(() => validateObject(monitor as unknown as K8sObject), /honorLabels|boolean/);
  // And a kind without a schema here is not waved through.
  assert.throws(
    () => validateObject({ apiVersion: "v1", kind: "Pod", metadata: { name: "x" } }),
    /no schema/,
  );
});

test(
  "deploy/k8s - nats-server runs the ConfigMap's config: token required, max_payload raised as the Helm values'",
  { timeout: 60_000 },
  async (t) => {
    const rendered = render(t, "cpu");
    if (rendered === undefined) return;
    // Every overlay runs the same NATS config.
    const configMap = (r: Rendered) => named<ConfigMap>(r, "ConfigMap", "imtrain-nats").data;
    for (const overlay of OVERLAY_NAMES) {
      const other = render(t, overlay);
      if (other === undefined) return;
      assert.deepEqual(configMap(other), configMap(rendered), `${overlay}'s NATS config`);
    }
    // The config file --config names is a key of the ConfigMap mounted at its directory.
    const template = natsOf(rendered).spec.template;
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
    mkdirSync(dir, { recursive: true });
    const file = join(dir, "nats.conf");
    writeFileSync(file, config);
    // The Secret's token reaches nats-server as $NATS_TOKEN, as the Deployment's env gives it.
    const token = "imtrain-test-3f9c2a";
    // Loopback and free ports on the command line, which override the file's.
    const [port, monitorPort] = [await freePort(), await freePort()];
    const child = spawn(
      binary,
      ["-c", file, "-a", "127.0.0.1", "-p", String(port), "-m", String(monitorPort)],
      {
        stdio: ["ignore", "ignore", "pipe"],
        env: { ...process.env, NATS_TOKEN: token },
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
    const server = `nats://127.0.0.1:${port}`;
    await assert.rejects(
      connect({ servers: server, reconnect: false }),
      /auth|Authorization/i,
      "no token, no entry",
    );
    await assert.rejects(
      connect({ servers: server, reconnect: false, token: "imtrain-wrong" }),
      /auth|Authorization/i,
      "a wrong token is refused",
    );
    const nc = await connect({ servers: server, reconnect: false, token });
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
      const values = parse(readFileSync(HELM_VALUES_FILE, "utf8")) as HelmValues;
      assert.equal(
        values.config.merge.max_payload,
        maxPayload,
        "the Helm chart's server gets the same max_payload",
      );
    } finally {
      await nc.close();
    }
  },
);
