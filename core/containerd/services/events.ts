// containerd.services.events.v1.Events over the exchange: Publish in the request's namespace,
// Forward an envelope as is, Subscribe with filters (namespace==..., topic~=...).
import { Code, invalidArgument, messageOf, status } from "../errdefs";
import type { Exchange } from "../events";
import { parseFilters } from "../filters";
import { defineService, serverStream, unary } from "../grpc";
import { type Any, type Timestamp, fromTimestamp, now, toTimestamp } from "../types";

export interface EnvelopeProto {
  timestamp: Timestamp | null;
  namespace: string;
  topic: string;
  event: Any | null;
}

export const eventsService = (events: Exchange) =>
  defineService("containerd.services.events.v1.Events", {
    Publish: unary<{ topic: string; event: Any | null }, object>((req, ctx) => {
      if (!req.event) throw invalidArgument("event must not be empty");
      events.forward({ timestamp: now(), namespace: ctx.namespace(), topic: req.topic, event: req.event });
      return {};
    }),

    Forward: unary<{ envelope: EnvelopeProto | null }, object>((req) => {
      const e = req.envelope;
      if (!e?.event) throw invalidArgument("envelope event must not be empty");
      events.forward({ timestamp: e.timestamp ? fromTimestamp(e.timestamp) : now(), namespace: e.namespace, topic: e.topic, event: e.event });
      return {};
    }),

    Subscribe: serverStream<{ filters: string[] }, EnvelopeProto>(async (req, ctx, send) => {
      // containerd's exchange fails the subscription with an error its service does not
      // translate: code Unknown, "subscription error: failed parsing subscription filters: ...".
      let filter;
      try {
        filter = parseFilters(req.filters);
      } catch (e) {
        throw status(Code.UNKNOWN, `subscription error: failed parsing subscription filters: ${messageOf(e)}`);
      }
      for await (const env of events.subscribe(filter, ctx.signal)) {
        await send({ timestamp: toTimestamp(env.timestamp), namespace: env.namespace, topic: env.topic, event: env.event });
      }
    }),
  });
