// grpc.health.v1.Health: SERVING while the daemon runs (dockerd's supervisor and
// `containerd.Client.IsServing` ask it).
import { defineService, serverStream, unary } from "../grpc";

export const healthService = () =>
  defineService("grpc.health.v1.Health", {
    Check: unary(() => ({ status: "SERVING" })),
    Watch: serverStream<object, object>(async (_req, ctx, send) => {
      await send({ status: "SERVING" });
      await new Promise<void>((r) => ctx.signal.addEventListener("abort", () => r()));
    }),
  });
