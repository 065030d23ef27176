// Image references: docker's normalisation (ParseNormalizedNamed + TagNameOnly), the familiar
// forms, ParseDockerRef, the raw grammar, and docker's / distribution's / go-digest's error texts.

import { describe, expect, test } from "bun:test";
import {
  familiarName,
  familiarString,
  isLoopbackHost,
  normalizeReference,
  parseAnyReference,
  parseDigest,
  parseDockerRef,
  parseNormalizedNamed,
  parseReference,
  registryApiHost,
  Reference,
} from "../core/image/reference";

const D = "sha256:" + "0123456789abcdef".repeat(4);
const HEX64 = "0123456789abcdef".repeat(4);

// input → [normalised (with :latest added), familiar string] | error text
const TABLE: [string, [string, string] | { error: string }][] = [
  ["busybox", ["docker.io/library/busybox:latest", "busybox:latest"]],
  ["busybox:1.36", ["docker.io/library/busybox:1.36", "busybox:1.36"]],
  ["library/busybox", ["docker.io/library/busybox:latest", "busybox:latest"]],
  ["docker.io/busybox", ["docker.io/library/busybox:latest", "busybox:latest"]],
  ["index.docker.io/busybox", ["docker.io/library/busybox:latest", "busybox:latest"]],
  ["index.docker.io/user/img:v1", ["docker.io/user/img:v1", "user/img:v1"]],
  ["docker.io/library/busybox:latest", ["docker.io/library/busybox:latest", "busybox:latest"]],
  ["docker.io/library/foo/bar", ["docker.io/library/foo/bar:latest", "library/foo/bar:latest"]],
  ["user/img", ["docker.io/user/img:latest", "user/img:latest"]],
  ["user/img/sub:t", ["docker.io/user/img/sub:t", "user/img/sub:t"]],
  ["localhost/x", ["localhost/x:latest", "localhost/x:latest"]],
  ["localhost:5000/x", ["localhost:5000/x:latest", "localhost:5000/x:latest"]],
  ["localhost:5000", ["docker.io/library/localhost:5000", "localhost:5000"]],
  ["localhost", ["docker.io/library/localhost:latest", "localhost:latest"]],
  ["foo.com", ["docker.io/library/foo.com:latest", "foo.com:latest"]],
  ["registry.example.com:5000/a/b:tag", ["registry.example.com:5000/a/b:tag", "registry.example.com:5000/a/b:tag"]],
  ["127.0.0.1:5000/foo", ["127.0.0.1:5000/foo:latest", "127.0.0.1:5000/foo:latest"]],
  ["[::1]:5000/foo:bar", ["[::1]:5000/foo:bar", "[::1]:5000/foo:bar"]],
  ["Example.com/foo", ["Example.com/foo:latest", "Example.com/foo:latest"]],
  ["EXAMPLE/foo", ["EXAMPLE/foo:latest", "EXAMPLE/foo:latest"]],
  ["sub-dom1.foo.com/bar/baz/quux:some-long-tag", ["sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com/bar/baz/quux:some-long-tag"]],
  ["a.b-c.d/e__f.g-h--i/j:K_L.m-N", ["a.b-c.d/e__f.g-h--i/j:K_L.m-N", "a.b-c.d/e__f.g-h--i/j:K_L.m-N"]],
  [`busybox@${D}`, [`docker.io/library/busybox@${D}`, `busybox@${D}`]],
  [`busybox:1.0@${D}`, [`docker.io/library/busybox:1.0@${D}`, `busybox:1.0@${D}`]],
  [`localhost:5000/a/b@${D}`, [`localhost:5000/a/b@${D}`, `localhost:5000/a/b@${D}`]],
  ["busybox:" + "a".repeat(128), ["docker.io/library/busybox:" + "a".repeat(128), "busybox:" + "a".repeat(128)]],
  ["a".repeat(237), [`docker.io/library/${"a".repeat(237)}:latest`, `${"a".repeat(237)}:latest`]],

  // errors
  ["", { error: "invalid reference format" }],
  ["Busybox", { error: "invalid reference format: repository name must be lowercase" }],
  ["user/Img", { error: "invalid reference format: repository name must be lowercase" }],
  ["docker.io/Library/busybox", { error: "invalid reference format: repository name must be lowercase" }],
  ["localhost:5000/Foo", { error: "invalid reference format: repository name must be lowercase" }],
  ["busybox:", { error: "invalid reference format" }],
  [":tag", { error: "invalid reference format" }],
  ["busybox:-tag", { error: "invalid reference format" }],
  ["busybox:.tag", { error: "invalid reference format" }],
  ["busybox:" + "a".repeat(129), { error: "invalid reference format" }],
  ["busybox:a:b", { error: "invalid reference format" }],
  ["foo___bar", { error: "invalid reference format" }],
  ["foo-.bar", { error: "invalid reference format" }],
  ["foo..bar", { error: "invalid reference format" }],
  ["-foo", { error: "invalid reference format" }],
  ["foo-", { error: "invalid reference format" }],
  ["foo/", { error: "invalid reference format" }],
  ["/foo", { error: "invalid reference format" }],
  ["foo//bar", { error: "invalid reference format" }],
  ["foo_bar.com:8080/x", { error: "invalid reference format" }],
  ["foo.com:port/x", { error: "invalid reference format" }],
  ["-foo.com/x", { error: "invalid reference format" }],
  ["foo bar", { error: "invalid reference format" }],
  ["busybox@sha256:abc", { error: "invalid reference format" }],
  ["busybox@sha256", { error: "invalid reference format" }],
  ["busybox@sha256:" + "a".repeat(32), { error: "invalid checksum digest length" }],
  ["busybox@sha256:" + "A".repeat(64), { error: "invalid checksum digest format" }],
  ["busybox@md5:" + "a".repeat(32), { error: "unsupported digest algorithm" }],
  ["a".repeat(238), { error: "repository name must not be more than 255 characters" }],
  [HEX64, { error: `invalid repository name (${HEX64}), cannot specify 64-byte hexadecimal strings` }],
];

describe("normalised references (docker's ParseNormalizedNamed + TagNameOnly)", () => {
  for (const [input, want] of TABLE) {
    test(JSON.stringify(input.length > 60 ? input.slice(0, 57) + "..." : input), () => {
      if ("error" in want) {
        expect(() => normalizeReference(input)).toThrow(want.error);
        let msg = "";
        try {
          normalizeReference(input);
        } catch (e) {
          msg = (e as Error).message;
        }
        expect(msg).toBe(want.error);
        return;
      }
      const r = normalizeReference(input);
      expect(r.toString()).toBe(want[0]);
      expect(r.familiarString).toBe(want[1]);
      // normalising is idempotent, and the familiar form normalises back
      expect(normalizeReference(r.toString()).toString()).toBe(want[0]);
      expect(normalizeReference(r.familiarString).toString()).toBe(want[0]);
    });
  }
});

describe("reference parts", () => {
  test("domain, path, tag, digest, name, object", () => {
    const r = normalizeReference(`registry.example.com:5000/a/b:tag@${D}`);
    expect(r.domain).toBe("registry.example.com:5000");
    expect(r.path).toBe("a/b");
    expect(r.tag).toBe("tag");
    expect(r.digest).toBe(D);
    expect(r.name).toBe("registry.example.com:5000/a/b");
    expect(r.object).toBe(D); // the digest wins for the API
    expect(r.registryHost).toBe("registry.example.com:5000");
    expect(normalizeReference("busybox").object).toBe("latest");
  });

  test("familiar names", () => {
    expect(familiarName("docker.io/library/busybox:latest")).toBe("busybox");
    expect(familiarString("docker.io/library/busybox:latest")).toBe("busybox:latest");
    expect(familiarName("docker.io/user/img")).toBe("user/img");
    expect(familiarName("localhost:5000/x")).toBe("localhost:5000/x");
    expect(parseNormalizedNamed("busybox").familiarString).toBe("busybox"); // no tag added
    expect(parseNormalizedNamed("busybox").toString()).toBe("docker.io/library/busybox");
  });

  test("ParseDockerRef: the digest wins over the tag", () => {
    expect(parseDockerRef(`busybox:1.0@${D}`).toString()).toBe(`docker.io/library/busybox@${D}`);
    expect(parseDockerRef("busybox").toString()).toBe("docker.io/library/busybox:latest");
    expect(parseDockerRef("user/img:v2").toString()).toBe("docker.io/user/img:v2");
  });

  test("ParseAnyReference: a bare ID is a digest", () => {
    expect(parseAnyReference(HEX64)).toEqual({ digest: `sha256:${HEX64}` });
    expect((parseAnyReference("busybox") as Reference).toString()).toBe("docker.io/library/busybox");
  });

  test("raw grammar (distribution's reference.Parse) does not normalise", () => {
    const r = parseReference("busybox");
    expect(r.domain).toBe("");
    expect(r.path).toBe("busybox");
    expect(r.tag).toBeUndefined();
    expect(parseReference("foo/bar:baz").domain).toBe("foo"); // the grammar takes the first component as a domain
    expect(() => parseReference("foo/Bar")).toThrow(/^repository name must be lowercase$/);
    expect(() => parseReference("")).toThrow(/^repository name must have at least one component$/);
    expect(() => parseReference("foo$")).toThrow(/^invalid reference format$/);
  });

  test("with tag / digest / name only", () => {
    const r = normalizeReference("busybox");
    expect(r.withTag("1.2").toString()).toBe("docker.io/library/busybox:1.2");
    expect(() => r.withTag("-x")).toThrow("invalid tag format");
    expect(r.nameOnly().withDigest(D).toString()).toBe(`docker.io/library/busybox@${D}`);
    expect(() => r.withDigest("sha256:zz")).toThrow("invalid digest format");
  });

  test("registry API host and loopback detection", () => {
    expect(registryApiHost("docker.io")).toBe("registry-1.docker.io");
    expect(registryApiHost("index.docker.io")).toBe("registry-1.docker.io");
    expect(normalizeReference("busybox").registryHost).toBe("registry-1.docker.io");
    expect(registryApiHost("quay.io")).toBe("quay.io");
    for (const h of ["localhost", "localhost:5000", "127.0.0.1", "127.1.2.3:80", "[::1]:5000", "::1"]) expect(isLoopbackHost(h)).toBe(true);
    for (const h of ["example.com", "10.0.0.1:5000", "localhost.example.com", "128.0.0.1"]) expect(isLoopbackHost(h)).toBe(false);
  });

  test("digests (go-digest)", () => {
    expect(parseDigest(D)).toEqual({ algorithm: "sha256", encoded: HEX64 });
    expect(parseDigest("sha512:" + "a".repeat(128)).algorithm).toBe("sha512");
    expect(() => parseDigest("sha256")).toThrow("invalid checksum digest format");
    expect(() => parseDigest("sha256:")).toThrow("invalid checksum digest format");
    expect(() => parseDigest(":abc")).toThrow("invalid checksum digest format");
    expect(() => parseDigest("sha256:abc")).toThrow("invalid checksum digest length");
    expect(() => parseDigest("sha256:" + "g".repeat(64))).toThrow("invalid checksum digest format");
    expect(() => parseDigest("foo:" + "a".repeat(64))).toThrow("unsupported digest algorithm");
    expect(() => parseDigest("Foo!:" + "a".repeat(64))).toThrow("invalid checksum digest format");
  });
});
