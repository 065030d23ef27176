// The event exchange (containerd's io.containerd.event.v1 "exchange"): services publish events
// under a topic ("/images/create", "/tasks/exit"...) in a namespace; subscribers get every event
// matching their filters (namespace, topic), across namespaces unless they filter on one.
import { invalidArgument, q } from "./errdefs";
import { type Filter, always } from "./filters";
import { packAny } from "./grpc";
import { validateIdentifier } from "./identifiers";
import { now, type Any, type Time } from "./types";

export interface Envelope {
  timestamp: Time;
  namespace: string;
  topic: string;
  event: Any;
}

/** containerd's topic rules: "/a/b", each component an identifier. */
export function validateTopic(topic: string): void {
  if (topic === "") throw invalidArgument("must not be empty");
  if (topic[0] !== "/") throw invalidArgument("must start with '/'");
  if (topic.length === 1) throw invalidArgument("must have at least one component");
  for (const c of topic.slice(1).split("/")) {
    try {
      validateIdentifier(c);
    } catch (e: any) {
      throw invalidArgument(`failed validation on component ${q(c)}: ${e.message}`);
    }
  }
}

/** Filter adaptor of envelopes: namespace, topic. */
export function envelopeAdaptor(e: Envelope) {
  return (path: string[]): [string, boolean] => {
    if (path[0] === "namespace") return [e.namespace, e.namespace.length > 0];
    if (path[0] === "topic") return [e.topic, e.topic.length > 0];
    return ["", false];
  };
}

interface Subscriber {
  filter: Filter;
  queue: Envelope[];
  wake?: () => void;
  closed: boolean;
}

const MAX_QUEUE = 4096;

export class Exchange {
  private subs = new Set<Subscriber>();

  /** Publish a proto event (packed as an Any named after its type). */
  publish(namespace: string, topic: string, typeName: string, event: object): void {
    validateTopic(topic);
    this.forward({ timestamp: now(), namespace, topic, event: packAny(typeName, event) });
  }

  /** Dispatch an already-built envelope (the Forward call; shims' events). */
  forward(env: Envelope): void {
    validateIdentifier(env.namespace);
    validateTopic(env.topic);
    for (const s of this.subs) {
      if (s.closed || !s.filter(envelopeAdaptor(env))) continue;
      // A subscriber that stops reading loses its oldest events rather than the daemon's memory.
      if (s.queue.length >= MAX_QUEUE) s.queue.shift();
      s.queue.push(env);
      s.wake?.();
    }
  }

  /** Envelopes matching `filter`, as they come, until `signal` aborts or the exchange closes. */
  async *subscribe(filter: Filter = always, signal?: AbortSignal): AsyncGenerator<Envelope> {
    const sub: Subscriber = { filter, queue: [], closed: false };
    this.subs.add(sub);
    const onAbort = () => {
      sub.closed = true;
      sub.wake?.();
    };
    signal?.addEventListener("abort", onAbort);
    try {
      while (!sub.closed) {
        const env = sub.queue.shift();
        if (env) {
          yield env;
          continue;
        }
        await new Promise<void>((r) => (sub.wake = r));
        sub.wake = undefined;
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.subs.delete(sub);
    }
  }

  get subscribers(): number {
    return this.subs.size;
  }

  /** End every subscription (shutdown). */
  close(): void {
    for (const s of this.subs) {
      s.closed = true;
      s.wake?.();
    }
  }
}

/**
 * Publish an event in the namespace of the request that caused it (as containerd does). Events are
 * best effort: a failure is logged, never turned into the call's error.
 */
export function publishFor(events: Exchange, ctx: { namespace(): string; log: { warn(m: string, f?: object): void } }, topic: string, typeName: string, event: object): void {
  try {
    events.publish(ctx.namespace(), topic, typeName, event);
  } catch (e: any) {
    ctx.log.warn("failed to publish event", { topic, error: e?.message ?? String(e) });
  }
}
