// Child process for test/image-archive.test.ts: imports a generated archive with one big layer
// (streamed from a generator, never held whole) into a sink that only hashes, and prints the peak
// RSS (VmHWM) in bytes as JSON. argv: <layout: docker|oci> <layer MiB> <tmpdir>
import { readFileSync } from "node:fs";
import { importArchive, type BlobSink } from "../core/image/archive";
import { encodeHeader, END_OF_ARCHIVE, paddingFor } from "../core/image/tar";
import type { Descriptor } from "../core/image/manifest";

const [layout, mibArg, tmpDir] = process.argv.slice(2);
const size = Number(mibArg) * 1024 * 1024;
const CHUNK = 256 * 1024;
const zero = new Uint8Array(CHUNK);

function hex(data: Uint8Array | string): string {
  return new Bun.CryptoHasher("sha256").update(data).digest("hex");
}
const h = new Bun.CryptoHasher("sha256");
for (let n = 0; n < size; n += CHUNK) h.update(zero.subarray(0, Math.min(CHUNK, size - n)));
const layerHex = h.digest("hex");

const enc = (s: unknown) => new TextEncoder().encode(JSON.stringify(s));
const config = enc({ architecture: "amd64", os: "linux", config: {}, rootfs: { type: "layers", diff_ids: [`sha256:${layerHex}`] } });
const configHex = hex(config);

function* file(name: string, data: Uint8Array): Generator<Uint8Array> {
  yield encodeHeader({ name, type: "file", mode: 0o644, size: data.byteLength });
  yield data;
  yield paddingFor(data.byteLength);
}
function* bigFile(name: string): Generator<Uint8Array> {
  yield encodeHeader({ name, type: "file", mode: 0o644, size });
  for (let n = 0; n < size; n += CHUNK) yield zero.subarray(0, Math.min(CHUNK, size - n));
  yield paddingFor(size);
}

async function* archive(): AsyncGenerator<Uint8Array> {
  if (layout === "docker") {
    // The old layout: the layer comes before manifest.json, so it must be spooled.
    yield* bigFile(`${layerHex}/layer.tar`);
    yield* file(`${configHex}.json`, config);
    yield* file("manifest.json", enc([{ Config: `${configHex}.json`, RepoTags: ["big:latest"], Layers: [`${layerHex}/layer.tar`] }]));
  } else {
    const manifest = enc({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: `sha256:${configHex}`, size: config.byteLength },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: `sha256:${layerHex}`, size }],
    });
    yield* file("oci-layout", enc({ imageLayoutVersion: "1.0.0" }));
    yield* bigFile(`blobs/sha256/${layerHex}`);
    yield* file(`blobs/sha256/${configHex}`, config);
    yield* file(`blobs/sha256/${hex(manifest)}`, manifest);
    yield* file(
      "index.json",
      enc({
        schemaVersion: 2,
        manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: `sha256:${hex(manifest)}`, size: manifest.byteLength, annotations: { "io.containerd.image.name": "docker.io/library/big:latest" } }],
      }),
    );
  }
  yield END_OF_ARCHIVE;
}

const stored = new Map<string, number>();
const sink: BlobSink = {
  async has(d) {
    return stored.has(d);
  },
  async write(desc: Descriptor, data) {
    const hh = new Bun.CryptoHasher("sha256");
    let n = 0;
    if (data instanceof Uint8Array) {
      hh.update(data);
      n = data.byteLength;
    } else {
      for await (const c of data as unknown as AsyncIterable<Uint8Array>) {
        hh.update(c);
        n += c.byteLength;
      }
    }
    if (`sha256:${hh.digest("hex")}` !== desc.digest || n !== desc.size) throw new Error(`sink: bad blob ${desc.digest}`);
    stored.set(desc.digest, n);
  },
};

const r = await importArchive(archive(), sink, { tmpDir });
const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))![1]) * 1024;
console.log(JSON.stringify({ hwm, images: r.images.map((i) => i.name), layer: stored.get(`sha256:${layerHex}`) }));
