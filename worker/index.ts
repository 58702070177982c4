// worker/: a rank — its replica, the training step, the all-reduce, and the worker process.
export { Rank } from "./rank.js";
export { trainStep, type AllReduce } from "./train-step.js";
export { Worker, type WorkerOptions, type WorkerState } from "./worker-process.js";
