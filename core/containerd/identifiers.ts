// containerd's identifiers package: the names of namespaces, containers, leases' objects...
import { invalidArgument, q } from "./errdefs";

const MAX_LENGTH = 76;
const IDENTIFIER_RE = /^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$/;
export const IDENTIFIER_PATTERN = "^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$";

/** Throws InvalidArgument with containerd's text when `s` is not a valid identifier. */
export function validateIdentifier(s: string): void {
  if (s.length === 0) throw invalidArgument("identifier must not be empty");
  if (s.length > MAX_LENGTH) throw invalidArgument(`identifier ${q(s)} greater than maximum length (${MAX_LENGTH} characters)`);
  if (!IDENTIFIER_RE.test(s)) throw invalidArgument(`identifier ${q(s)} must match ${IDENTIFIER_PATTERN}`);
}

const LABEL_MAX_SIZE = 4096;

/** containerd's labels.Validate: a key and value together fit in 4096 bytes. */
export function validateLabel(key: string, value: string): void {
  if (Buffer.byteLength(key) + Buffer.byteLength(value) > LABEL_MAX_SIZE) {
    throw invalidArgument(`label key and value greater than maximum size (${LABEL_MAX_SIZE} bytes), key: ${key.slice(0, 10)}`);
  }
}

const DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const DIGEST_HEX: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };

/** go-digest's Validate: returns the problem, or undefined for a valid digest. */
export function digestProblem(d: string): string | undefined {
  const i = d.indexOf(":");
  if (i <= 0 || i + 1 === d.length) return "invalid checksum digest format";
  const want = DIGEST_HEX[d.slice(0, i)];
  if (want === undefined) return DIGEST_RE.test(d) ? "unsupported digest algorithm" : "invalid checksum digest format";
  const hex = d.slice(i + 1);
  if (hex.length !== want) return "invalid checksum digest length";
  if (!/^[a-f0-9]+$/.test(hex)) return "invalid checksum digest format";
  return undefined;
}
