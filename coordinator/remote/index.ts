// coordinator/remote/: the job's workers over NATS, by concept.
export { RemoteRanks, type RemoteRanksOptions } from "./remote-ranks.js";
export { WorkerLostError, ChecksumMismatchError, LostReplyError, RingBrokenError } from "./errors.js";
export { Membership, type MembershipEvents } from "./membership.js";
export { Gather, type Reply } from "./gather.js";
