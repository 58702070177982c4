// worker/: a rank — its replica and the training step.
export { Rank } from "./rank.js";
export { trainStep, type AllReduce } from "./train-step.js";
