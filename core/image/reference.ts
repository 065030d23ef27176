// Image references, parsed and normalised as docker and containerd do: the grammar of
// github.com/docker/distribution/reference (v2.8, the version docker 20.10 and containerd 1.6
// vendor), docker's normalisation (normalize.go: ParseNormalizedNamed, FamiliarName/String,
// TagNameOnly, ParseDockerRef) and go-digest's digest validation.
//
//   reference                       := name [ ":" tag ] [ "@" digest ]
//   name                            := [domain '/'] path-component ['/' path-component]*
//   domain                          := host [':' port-number]
//   host                            := domain-name | '[' ipv6 ']'     (ipv6: as distribution/reference v0.5+)
//   domain-name                     := domain-component ['.' domain-component]*
//   domain-component                := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
//   port-number                     := /[0-9]+/
//   path-component                  := alpha-numeric [separator alpha-numeric]*
//   alpha-numeric                   := /[a-z0-9]+/
//   separator                       := /[_.]|__|[-]+/
//   tag                             := /[\w][\w.-]{0,127}/
//   digest                          := digest-algorithm ":" digest-hex
//   digest-algorithm                := algorithm-component [ algorithm-separator algorithm-component ]*
//   algorithm-separator             := /[+.-_]/
//   algorithm-component             := /[A-Za-z][A-Za-z0-9]*/
//   digest-hex                      := /[0-9a-fA-F]{32,}/

// ---------------------------------------------------------------------------------------------
// Grammar (distribution/reference regexp.go)

const alphaNumeric = "[a-z0-9]+";
const separator = "(?:[._]|__|[-]+)";
const pathComponent = `${alphaNumeric}(?:${separator}${alphaNumeric})*`;
const domainComponent = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const ipv6Address = "\\[(?:[a-fA-F0-9:]+)\\]";
const domainName = `${domainComponent}(?:\\.${domainComponent})*`;
const hostPat = `(?:${domainName}|${ipv6Address})`;
const domainAndPort = `${hostPat}(?::[0-9]+)?`;
const tagPat = "[\\w][\\w.-]{0,127}";
const digestPat = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}";
const remoteName = `${pathComponent}(?:/${pathComponent})*`;
const namePat = `(?:${domainAndPort}/)?${remoteName}`;

/** The whole reference: captures name, tag, digest. */
export const REFERENCE_REGEXP = new RegExp(`^(${namePat})(?::(${tagPat}))?(?:@(${digestPat}))?$`);
const ANCHORED_NAME = new RegExp(`^(?:(${domainAndPort})/)?(${remoteName})$`);
const ANCHORED_TAG = new RegExp(`^${tagPat}$`);
const ANCHORED_DOMAIN = new RegExp(`^${domainAndPort}$`);
/** A bare 64-hex image ID. */
export const ANCHORED_IDENTIFIER = /^[a-f0-9]{64}$/;
const ANCHORED_DIGEST = new RegExp(`^${digestPat}$`);

export const NAME_TOTAL_LENGTH_MAX = 255;

export const DEFAULT_DOMAIN = "docker.io";
export const LEGACY_DEFAULT_DOMAIN = "index.docker.io";
export const OFFICIAL_REPO_NAME = "library";
export const DEFAULT_TAG = "latest";
/** Where docker.io's registry API actually lives. */
export const DEFAULT_REGISTRY_HOST = "registry-1.docker.io";
/** The key docker keeps Docker Hub credentials under in config.json. */
export const DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/";

// ---------------------------------------------------------------------------------------------
// Errors (messages are distribution's / go-digest's / docker's, verbatim)

export class ReferenceError extends Error {
  override name = "ReferenceError";
}

export const ERR_REFERENCE_INVALID_FORMAT = "invalid reference format";
export const ERR_TAG_INVALID_FORMAT = "invalid tag format";
export const ERR_DIGEST_INVALID_FORMAT = "invalid digest format";
export const ERR_NAME_CONTAINS_UPPERCASE = "repository name must be lowercase";
export const ERR_NAME_EMPTY = "repository name must have at least one component";
export const ERR_NAME_TOO_LONG = `repository name must not be more than ${NAME_TOTAL_LENGTH_MAX} characters`;
export const ERR_NAME_NOT_CANONICAL = "repository name must be canonical";
// go-digest
export const ERR_CHECKSUM_DIGEST_FORMAT = "invalid checksum digest format";
export const ERR_CHECKSUM_DIGEST_LENGTH = "invalid checksum digest length";
export const ERR_DIGEST_UNSUPPORTED = "unsupported digest algorithm";

// ---------------------------------------------------------------------------------------------
// Digests (go-digest)

export type DigestAlgorithm = "sha256" | "sha384" | "sha512";
const DIGEST_HEX_LEN: Record<DigestAlgorithm, number> = { sha256: 64, sha384: 96, sha512: 128 };

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  encoded: string;
}

/** go-digest's Digest.Validate: throws with its error text, returns the parts. */
export function parseDigest(s: string): ParsedDigest {
  const i = s.indexOf(":");
  if (i <= 0 || i + 1 === s.length) throw new ReferenceError(ERR_CHECKSUM_DIGEST_FORMAT);
  const algorithm = s.slice(0, i);
  const encoded = s.slice(i + 1);
  if (!(algorithm in DIGEST_HEX_LEN)) {
    if (!ANCHORED_DIGEST.test(s)) throw new ReferenceError(ERR_CHECKSUM_DIGEST_FORMAT);
    throw new ReferenceError(ERR_DIGEST_UNSUPPORTED);
  }
  const alg = algorithm as DigestAlgorithm;
  if (encoded.length !== DIGEST_HEX_LEN[alg]) throw new ReferenceError(ERR_CHECKSUM_DIGEST_LENGTH);
  if (!/^[a-f0-9]+$/.test(encoded)) throw new ReferenceError(ERR_CHECKSUM_DIGEST_FORMAT);
  return { algorithm: alg, encoded };
}

export function isValidDigest(s: string): boolean {
  try {
    parseDigest(s);
    return true;
  } catch {
    return false;
  }
}

/** The sha256 digest ("sha256:<hex>") of some bytes. */
export function sha256Digest(data: Uint8Array | string): string {
  return "sha256:" + new Bun.CryptoHasher("sha256").update(data).digest("hex");
}

// ---------------------------------------------------------------------------------------------
// References

/**
 * A parsed reference. `domain` is empty only for references parsed with `parseReference` (the
 * un-normalised grammar) that have no domain part; every normalised reference has one.
 */
export class Reference {
  constructor(
    readonly domain: string,
    readonly path: string,
    readonly tag?: string,
    readonly digest?: string,
  ) {}

  /** domain/path (distribution's Name()). */
  get name(): string {
    return this.domain ? `${this.domain}/${this.path}` : this.path;
  }

  /** name[:tag][@digest]: the full form, as distribution's String(). */
  toString(): string {
    let s = this.name;
    if (this.tag !== undefined) s += ":" + this.tag;
    if (this.digest !== undefined) s += "@" + this.digest;
    return s;
  }

  /** The tag, or the digest: what goes after /manifests/ in the registry API. */
  get object(): string {
    return this.digest ?? this.tag ?? DEFAULT_TAG;
  }

  /** Docker's short form of the name: `busybox`, `user/img`, `localhost:5000/x`. */
  get familiarName(): string {
    if (this.domain !== DEFAULT_DOMAIN) return this.name;
    const parts = this.path.split("/");
    if (parts.length === 2 && parts[0] === OFFICIAL_REPO_NAME) return parts[1]!;
    return this.path;
  }

  /** Docker's short form of the whole reference: `busybox:latest`, `user/img@sha256:...`. */
  get familiarString(): string {
    let s = this.familiarName;
    if (this.tag !== undefined) s += ":" + this.tag;
    if (this.digest !== undefined) s += "@" + this.digest;
    return s;
  }

  /** TagNameOnly: adds `:latest` when there is neither tag nor digest. */
  withDefaultTag(): Reference {
    if (this.tag === undefined && this.digest === undefined) return new Reference(this.domain, this.path, DEFAULT_TAG);
    return this;
  }

  withTag(tag: string): Reference {
    if (!ANCHORED_TAG.test(tag)) throw new ReferenceError(ERR_TAG_INVALID_FORMAT);
    return new Reference(this.domain, this.path, tag, this.digest);
  }

  withDigest(digest: string): Reference {
    if (!ANCHORED_DIGEST.test(digest)) throw new ReferenceError(ERR_DIGEST_INVALID_FORMAT);
    return new Reference(this.domain, this.path, this.tag, digest);
  }

  /** TrimNamed: the repository alone. */
  nameOnly(): Reference {
    return new Reference(this.domain, this.path);
  }

  /** The host that serves the registry API for this reference's domain (docker.io → registry-1.docker.io). */
  get registryHost(): string {
    return registryApiHost(this.domain);
  }
}

/**
 * distribution's reference.Parse: the raw grammar, no normalisation (no default domain, no
 * library/ prefix, no default tag).
 */
export function parseReference(s: string): Reference {
  const m = REFERENCE_REGEXP.exec(s);
  if (!m) {
    if (s === "") throw new ReferenceError(ERR_NAME_EMPTY);
    if (REFERENCE_REGEXP.test(s.toLowerCase())) throw new ReferenceError(ERR_NAME_CONTAINS_UPPERCASE);
    throw new ReferenceError(ERR_REFERENCE_INVALID_FORMAT);
  }
  const name = m[1]!;
  if (name.length > NAME_TOTAL_LENGTH_MAX) throw new ReferenceError(ERR_NAME_TOO_LONG);
  const nm = ANCHORED_NAME.exec(name);
  const domain = nm?.[1] ?? "";
  const path = nm ? nm[2]! : name;
  const digest = m[3];
  if (digest !== undefined) parseDigest(digest);
  return new Reference(domain, path, m[2], digest);
}

/** docker's splitDockerDomain. */
export function splitDockerDomain(name: string): [domain: string, remainder: string] {
  let domain: string;
  let remainder: string;
  const i = name.indexOf("/");
  const first = i === -1 ? "" : name.slice(0, i);
  if (i === -1 || (!/[.:]/.test(first) && first !== "localhost" && first.toLowerCase() === first)) {
    domain = DEFAULT_DOMAIN;
    remainder = name;
  } else {
    domain = first;
    remainder = name.slice(i + 1);
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !remainder.includes("/")) remainder = `${OFFICIAL_REPO_NAME}/${remainder}`;
  return [domain, remainder];
}

/**
 * docker's ParseNormalizedNamed: `busybox` → docker.io/library/busybox (no tag added; see
 * `parseDockerRef` / `normalizeReference` for that).
 */
export function parseNormalizedNamed(s: string): Reference {
  if (ANCHORED_IDENTIFIER.test(s)) {
    throw new ReferenceError(`invalid repository name (${s}), cannot specify 64-byte hexadecimal strings`);
  }
  const [domain, remainder] = splitDockerDomain(s);
  const tagSep = remainder.indexOf(":");
  const remote = tagSep > -1 ? remainder.slice(0, tagSep) : remainder;
  if (remote.toLowerCase() !== remote) {
    throw new ReferenceError(`${ERR_REFERENCE_INVALID_FORMAT}: ${ERR_NAME_CONTAINS_UPPERCASE}`);
  }
  return parseReference(`${domain}/${remainder}`);
}

/**
 * The reference docker pulls: normalised, `:latest` added when there is neither tag nor digest.
 * A `name:tag@digest` keeps both parts (docker pulls by the digest; see `parseDockerRef`).
 */
export function normalizeReference(s: string): Reference {
  return parseNormalizedNamed(s).withDefaultTag();
}

/**
 * containerd/docker's ParseDockerRef: normalised; `name:tag@digest` becomes `name@digest` (the
 * digest wins); `:latest` added when there is neither.
 */
export function parseDockerRef(s: string): Reference {
  const r = parseNormalizedNamed(s);
  if (r.digest !== undefined) return new Reference(r.domain, r.path, undefined, r.digest);
  return r.withDefaultTag();
}

/** docker's ParseAnyReference: a bare 64-hex ID is `sha256:<id>` (returned as a digest string). */
export function parseAnyReference(s: string): Reference | { digest: string } {
  if (ANCHORED_IDENTIFIER.test(s)) return { digest: `sha256:${s}` };
  return parseNormalizedNamed(s);
}

/** FamiliarString of a normalised reference string. */
export function familiarString(s: string): string {
  return parseNormalizedNamed(s).familiarString;
}

/** FamiliarName of a normalised reference string. */
export function familiarName(s: string): string {
  return parseNormalizedNamed(s).familiarName;
}

export function isValidTag(tag: string): boolean {
  return ANCHORED_TAG.test(tag);
}

export function isValidDomain(domain: string): boolean {
  return ANCHORED_DOMAIN.test(domain);
}

/** The API host for a registry domain: docker.io (and index.docker.io) → registry-1.docker.io. */
export function registryApiHost(domain: string): string {
  return domain === DEFAULT_DOMAIN || domain === LEGACY_DEFAULT_DOMAIN ? DEFAULT_REGISTRY_HOST : domain;
}

/** A domain is local (loopback): docker treats these registries as insecure by default. */
export function isLoopbackHost(hostport: string): boolean {
  const host = hostOnly(hostport);
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** The host part of host[:port] / [ipv6][:port]. */
export function hostOnly(hostport: string): string {
  if (hostport.startsWith("[")) {
    const end = hostport.indexOf("]");
    return end > 0 ? hostport.slice(1, end) : hostport;
  }
  const i = hostport.lastIndexOf(":");
  if (i === -1 || hostport.indexOf(":") !== i) return hostport; // no port, or a bare IPv6 address
  return hostport.slice(0, i);
}
