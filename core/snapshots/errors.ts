// containerd's errdefs classes as the snapshotters use them. Messages are built the way Go's
// fmt.Errorf("...: %w", errdefs.ErrX) builds them, so they read exactly like containerd's:
//   "snapshot does not exist: not found", "cannot remove snapshot with child: failed precondition".
// Wrapping keeps the class: wrap(e, "failed to remove snapshot x") is still NotFound if e was.

export type ErrorCode = "NotFound" | "AlreadyExists" | "FailedPrecondition" | "InvalidArgument" | "Unknown";

/** errdefs' own texts (errdefs.ErrNotFound.Error() == "not found", ...). */
export const ERRDEF_TEXT: Record<ErrorCode, string> = {
  NotFound: "not found",
  AlreadyExists: "already exists",
  FailedPrecondition: "failed precondition",
  InvalidArgument: "invalid argument",
  Unknown: "unknown",
};

/** The gRPC status code errdefs.ToGRPC maps each class to. */
export const GRPC_CODE: Record<ErrorCode, number> = {
  InvalidArgument: 3,
  NotFound: 5,
  AlreadyExists: 6,
  FailedPrecondition: 9,
  Unknown: 2,
};

export class SnapshotError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SnapshotError";
    this.code = code;
  }
  get grpcCode(): number {
    return GRPC_CODE[this.code];
  }
}

/** fmt.Errorf("<prefix>: %w", errdefs.ErrX); no prefix: the bare errdefs text. */
export function errdef(code: ErrorCode, prefix?: string): SnapshotError {
  return new SnapshotError(code, prefix ? `${prefix}: ${ERRDEF_TEXT[code]}` : ERRDEF_TEXT[code]);
}

export const notFound = (prefix?: string) => errdef("NotFound", prefix);
export const alreadyExists = (prefix?: string) => errdef("AlreadyExists", prefix);
export const failedPrecondition = (prefix?: string) => errdef("FailedPrecondition", prefix);
export const invalidArgument = (prefix?: string) => errdef("InvalidArgument", prefix);

/** fmt.Errorf("<prefix>: %w", err): same class, message prefixed. */
export function wrap(err: unknown, prefix: string): Error {
  if (err instanceof SnapshotError) return new SnapshotError(err.code, `${prefix}: ${err.message}`, { cause: err });
  const msg = err instanceof Error ? err.message : String(err);
  return new Error(`${prefix}: ${msg}`, { cause: err });
}

export function errorCode(err: unknown): ErrorCode {
  return err instanceof SnapshotError ? err.code : "Unknown";
}
export const isNotFound = (e: unknown) => errorCode(e) === "NotFound";
export const isAlreadyExists = (e: unknown) => errorCode(e) === "AlreadyExists";
export const isFailedPrecondition = (e: unknown) => errorCode(e) === "FailedPrecondition";
export const isInvalidArgument = (e: unknown) => errorCode(e) === "InvalidArgument";

/** Go's %q for the strings we quote (keys, names, field paths): a double-quoted escaped literal. */
export function goQuote(s: string): string {
  return JSON.stringify(s);
}
