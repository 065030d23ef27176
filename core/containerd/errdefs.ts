// containerd's error kinds (its errdefs package) and their gRPC status codes. An error message
// ends with the kind's text, as containerd's do: `image "x": not found`, `namespace "x" must be
// empty, but it still has images: failed precondition`. The message goes over the wire as the
// status details, so clients (the real ctr, dockerd) print the same text.

/** gRPC status codes (google.golang.org/grpc/codes). */
export const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type CodeValue = (typeof Code)[keyof typeof Code];

/** Go's codes.Code String(), as ctr prints it ("NotFound"). */
export const CODE_NAMES: Record<number, string> = {
  0: "OK", 1: "Canceled", 2: "Unknown", 3: "InvalidArgument", 4: "DeadlineExceeded", 5: "NotFound",
  6: "AlreadyExists", 7: "PermissionDenied", 8: "ResourceExhausted", 9: "FailedPrecondition", 10: "Aborted",
  11: "OutOfRange", 12: "Unimplemented", 13: "Internal", 14: "Unavailable", 15: "DataLoss", 16: "Unauthenticated",
};

/** The text containerd appends for each kind. */
const KIND_TEXT: Partial<Record<number, string>> = {
  [Code.UNKNOWN]: "unknown",
  [Code.INVALID_ARGUMENT]: "invalid argument",
  [Code.NOT_FOUND]: "not found",
  [Code.ALREADY_EXISTS]: "already exists",
  [Code.FAILED_PRECONDITION]: "failed precondition",
  [Code.UNAVAILABLE]: "unavailable",
  [Code.UNIMPLEMENTED]: "not implemented",
  [Code.CANCELLED]: "context canceled",
  [Code.DEADLINE_EXCEEDED]: "context deadline exceeded",
};

/** An error with a gRPC code; `message` is the full text sent as the status details. */
export class ErrDef extends Error {
  constructor(
    readonly code: CodeValue | number,
    message: string,
  ) {
    super(message);
    this.name = "ErrDef";
  }
}

/** `${what}: <kind text>` (or the kind text alone), with the kind's code. */
function kind(code: CodeValue) {
  return (what?: string) => new ErrDef(code, what ? `${what}: ${KIND_TEXT[code]}` : KIND_TEXT[code]!);
}

export const notFound = kind(Code.NOT_FOUND);
export const alreadyExists = kind(Code.ALREADY_EXISTS);
export const invalidArgument = kind(Code.INVALID_ARGUMENT);
export const failedPrecondition = kind(Code.FAILED_PRECONDITION);
export const unavailable = kind(Code.UNAVAILABLE);
export const notImplemented = kind(Code.UNIMPLEMENTED);

/** An error with a code and an exact message (no kind text appended), like grpc's status.Errorf. */
export function status(code: CodeValue, message: string): ErrDef {
  return new ErrDef(code, message);
}

/**
 * What a Go handler sends for an error it returns without errdefs.ToGRPC: code Unknown with the
 * error's text (so the real ctr prints "...: invalid argument: unknown").
 */
export function untranslated<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw new ErrDef(Code.UNKNOWN, messageOf(e));
  }
}

export function codeOf(e: unknown): number {
  if (e instanceof ErrDef) return e.code;
  // The snapshotters' errors (core/snapshots/errors.ts) carry their class's gRPC code.
  if (typeof (e as any)?.grpcCode === "number") return (e as any).grpcCode;
  return typeof (e as any)?.code === "number" ? (e as any).code : Code.UNKNOWN;
}

export const isNotFound = (e: unknown) => codeOf(e) === Code.NOT_FOUND;
export const isAlreadyExists = (e: unknown) => codeOf(e) === Code.ALREADY_EXISTS;
export const isInvalidArgument = (e: unknown) => codeOf(e) === Code.INVALID_ARGUMENT;
export const isFailedPrecondition = (e: unknown) => codeOf(e) === Code.FAILED_PRECONDITION;
export const isNotImplemented = (e: unknown) => codeOf(e) === Code.UNIMPLEMENTED;
export const isUnavailable = (e: unknown) => codeOf(e) === Code.UNAVAILABLE;

/** Go's %q for the strings we quote in messages (ASCII-compatible with strconv.Quote). */
export function q(s: string): string {
  return JSON.stringify(s);
}

/** An error's message, for any thrown value. */
export function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof (e as any)?.details === "string") return (e as any).details;
  return String(e);
}
