// Subject matching and routing for the embedded broker. Subjects are dot-separated tokens; in a
// subscription `*` matches exactly one token and `>` (last token only) matches one or more. Routing is a
// linear scan: the trainer holds tens of subscriptions, not the millions nats-server's trie is built for.

/** One SUB of one connection; `C` is the connection type, kept generic so this file imports nothing. */
export interface Subscription<C> {
  readonly owner: C;
  readonly sid: string;
  readonly subject: string;
  readonly tokens: readonly string[];
  readonly queue: string | undefined;
  delivered: number;
  /** Auto-unsubscribe once `delivered` reaches this (UNSUB sid max). */
  max: number | undefined;
}

/** A subscription subject: non-empty tokens, `>` only as the last one. */
export function isValidSubscribeSubject(subject: string): boolean {
  const tokens = subject.split(".");
  return tokens.every((token, i) => token !== "" && (token !== ">" || i === tokens.length - 1));
}

/** A publish subject: non-empty tokens and no wildcards. */
export function isValidPublishSubject(subject: string): boolean {
  return subject.split(".").every((token) => token !== "" && token !== "*" && token !== ">");
}

/** Whether the subscription `pattern` tokens match the literal `subject` tokens. */
export function subjectMatches(pattern: readonly string[], subject: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const token = pattern[i];
    if (token === ">") return subject.length > i;
    if (i >= subject.length || (token !== "*" && token !== subject[i])) return false;
  }
  return pattern.length === subject.length;
}

export class SubscriptionIndex<C> {
  private readonly all = new Set<Subscription<C>>();

  add(subscription: Subscription<C>): void {
    this.all.add(subscription);
  }

  remove(subscription: Subscription<C>): void {
    this.all.delete(subscription);
  }

  get size(): number {
    return this.all.size;
  }

  /**
   * The subscriptions one message to `subject` goes to: every matching plain subscription, plus one
   * member, picked at random as nats-server does, of each matching queue group. `accept` filters
   * candidates first (no-echo connections), so a group never picks a member that would drop the message.
   */
  route(subject: string, accept: (subscription: Subscription<C>) => boolean): Subscription<C>[] {
    const tokens = subject.split(".");
    const targets: Subscription<C>[] = [];
    const groups = new Map<string, Subscription<C>[]>();
    for (const subscription of this.all) {
      if (!subjectMatches(subscription.tokens, tokens) || !accept(subscription)) continue;
      if (subscription.queue === undefined) {
        targets.push(subscription);
      } else {
        const members = groups.get(subscription.queue);
        if (members === undefined) groups.set(subscription.queue, [subscription]);
        else members.push(subscription);
      }
    }
    for (const members of groups.values()) {
      const picked = members[Math.floor(Math.random() * members.length)];
      if (picked !== undefined) targets.push(picked);
    }
    return targets;
  }
}
