// shared/: what coordinator and worker both use. Imports nothing from either.
export {
  UserError,
  DataError,
  OptionError,
  BackendError,
  CheckpointError,
  describeFileError,
  formatSource,
  type SourceRef,
} from "./errors.js";
export { decodeUtf8, type NotUtf8 } from "./utf8-text.js";
export { hashKeys, mulberry32, permutation } from "./random.js";
export {
  compileDataOptions,
  compileTrainOptions,
  inRange,
  oneOf,
  positive,
  type DataFlags,
  type DataOptions,
  type TrainFlags,
  type TrainOptions,
} from "./options.js";
export {
  RANK_PHASES,
  STEP_PHASES,
  type CheckpointRecord,
  type EvalRecord,
  type MetricsSink,
  type RankPhase,
  type RankPhaseSeconds,
  type StepPhaseSeconds,
  type StepRecord,
} from "./metrics/records.js";
// backends
export {
  BACKEND_NAMES,
  selectBackend,
  describeBackend,
  backendDeviceMismatch,
  throwIfBackendFailed,
  hasSynchronousReads,
  hasFastTransposedMatMul,
  type BackendName,
  type ConcreteBackend,
  type SelectedBackend,
} from "./backend/select.js";
export {
  CPU_DEVICE,
  DEVICE_HELP,
  defaultTrainDevice,
  formatDevice,
  parseDevice,
  type Device,
} from "./backend/device.js";
export { adapterLabel, describeAdapter, type AdapterReport } from "./backend/adapter.js";
export { checkWebGpuLimits, largestTensors, longestInput } from "./backend/limits.js";
export { webGpuAdapters, type ListedAdapter } from "./backend/webgpu.js";
// data
export type { Conversation, Role, Turn } from "./data/conversation.js";
export { DATA_FORMATS, isDataFormat, parseDataText, readDataFile, type DataFormat } from "./data/formats.js";
export {
  TEMPLATE_NAMES,
  renderConversation,
  renderPrompt,
  type Span,
  type SpanKind,
  type TemplateName,
} from "./data/template.js";
export {
  OUTPUT_KIND,
  SPAN_KINDS,
  spanWeight,
  tokenizeSpans,
  type LossWeighting,
  type TokenizedExample,
} from "./data/encode.js";
export { encodeConversations, type Dataset, type EncodingOptions, type Example } from "./data/dataset.js";
export { encodingOptions, loadDataTokenizer, loadEncoded, type Log } from "./data/load.js";
export { analyzeDataset, lengthStats, type DataAnalysis, type LengthStats } from "./data/analyze.js";
export {
  generateSynthetic,
  writeSyntheticJsonl,
  describeLengths,
  type AlpacaRecord,
  type SynthOptions,
} from "./data/synth.js";
export type { Tokenizer } from "./data/tokenizer.js";
export {
  loadTokenizer,
  ByteTokenizer,
  Gpt2Tokenizer,
  HuggingFaceTokenizer,
} from "./data/tokenizers/index.js";
// model
export {
  MODEL_PRESETS,
  presetConfig,
  configFromHuggingFace,
  configToHuggingFace,
  type GptConfig,
} from "./model/config.js";
export { Gpt, initialValues, parameterShapes } from "./model/gpt.js";
export {
  loadCheckpoint,
  saveCheckpoint,
  isCheckpointDir,
  type LoadedCheckpoint,
  type TrainerState,
} from "./model/checkpoint.js";
export { readSafetensors, writeSafetensors, type HostTensor } from "./model/safetensors.js";
export { checkTokenizerFits, resolveModel, type ModelSource } from "./model/source.js";
export { generate, type GenerateOptions } from "./model/generate.js";
// training
export {
  LOSS_REDUCTIONS,
  crossEntropy,
  maskedLoss,
  normaliserShare,
  stepNormaliser,
  type LossReduction,
} from "./train/loss.js";
export { makeMicroBatch, chunk, type MicroBatch } from "./train/batch.js";
export { accumulateGradients, type GradientOptions } from "./train/gradients.js";
export { StepBufferLayout, STEP_TOTALS, clipGradNorm, type StepTotals } from "./train/step-buffer.js";
export { AdamW, type AdamWOptions } from "./train/adamw.js";
export { LR_SCHEDULES, learningRate, type LrSchedule, type ScheduleOptions } from "./train/schedule.js";
export { BatchPlan, assignToRanks, splitEvenly } from "./train/plan.js";
export { prepareRun, fingerprint, type PreparedRun } from "./train/prepare.js";
export { fixedSubset, splitHeldOut, type EvalSplit } from "./data/eval-sets.js";
export { scoreExamples, scoreExamplesAsync, meanOutputLoss, type ExampleScore } from "./train/score.js";
// NATS connections: flags → settings → ConnectionOptions, and refusals in one line
export { splitNatsUrl, redactNatsUrl, type SplitNatsUrl, type UrlCredentials } from "./nats/url.js";
export {
  NATS_ENV,
  compileNatsSettings,
  childNatsEnvironment,
  describeNatsAuth,
  type Environment,
  type FileSetting,
  type NatsAuth,
  type NatsConnectionSettings,
  type NatsFlags,
  type NatsSecurityFlags,
  type NatsTls,
} from "./nats/settings.js";
export {
  checkNatsConnection,
  connectToNats,
  natsConnectionOptions,
  type NatsClientOptions,
} from "./nats/connect.js";
export { NatsConnectError, explainConnectError, type NatsRefusal } from "./nats/connect-error.js";
