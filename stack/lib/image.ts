// OCI images without a Docker daemon: each layer is a directory tarred reproducibly (GNU tar:
// sorted names, mtime 0, root-owned), the config and manifest are written here, and the result is an
// OCI archive that `ctr images import` takes. Archives are cached by the caller's input key, so an
// unchanged image is never rebuilt.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';

export interface ImageConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  User?: string;
  Env?: string[];
  WorkingDir?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
}

export interface ImageSpec {
  /** Full reference, e.g. ferry.local/ferry:0123abcd. */
  ref: string;
  /** Root directories, bottom layer first. */
  layers: string[];
  config: ImageConfig;
}

export interface BuiltImage {
  ref: string;
  archive: string;
  /** Sum of the uncompressed layer sizes, as the image occupies a node's disk. */
  bytes: number;
}

/** Tars `root` reproducibly into `file`, hashing and counting the bytes as they are written, so a
 * layer is never read back to be hashed. */
async function tarLayer(root: string, file: string): Promise<{ digest: string; size: number }> {
  const tar = spawn(
    'tar',
    [
      '--create',
      '--file=-',
      `--directory=${root}`,
      '--format=gnu',
      '--sort=name',
      '--mtime=@0',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '.',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = once(tar, 'close');
  let stderr = '';
  tar.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const hash = createHash('sha256');
  let size = 0;
  await pipeline(
    tar.stdout,
    async function* (chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        hash.update(chunk);
        size += chunk.length;
        yield chunk;
      }
    },
    createWriteStream(file),
  );
  const [code] = await exited;
  if (code !== 0) throw new Error(`tar of ${root} failed (exit ${code}): ${stderr.trim()}`);
  return { digest: hash.digest('hex'), size };
}

function sha256(data: string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Writes the image as an OCI archive at `archive` (atomically: a crash leaves no half archive). */
export async function buildImage(spec: ImageSpec, archive: string): Promise<BuiltImage> {
  const work = `${archive}.work`;
  rmSync(work, { recursive: true, force: true });
  const blobs = join(work, 'layout', 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const layers: { digest: string; size: number }[] = [];
  for (const [i, root] of spec.layers.entries()) {
    const tar = join(work, `layer-${i}.tar`);
    const layer = await tarLayer(root, tar);
    renameSync(tar, join(blobs, layer.digest));
    layers.push(layer);
  }
  const blob = (json: unknown): { digest: string; size: number } => {
    const text = JSON.stringify(json);
    const digest = sha256(text);
    writeFileSync(join(blobs, digest), text);
    return { digest, size: Buffer.byteLength(text) };
  };
  const config = blob({
    architecture: 'amd64',
    os: 'linux',
    config: spec.config,
    rootfs: { type: 'layers', diff_ids: layers.map((l) => `sha256:${l.digest}`) },
  });
  const manifest = blob({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: `sha256:${config.digest}`,
      size: config.size,
    },
    layers: layers.map((l) => ({
      mediaType: 'application/vnd.oci.image.layer.v1.tar',
      digest: `sha256:${l.digest}`,
      size: l.size,
    })),
  });
  const tag = spec.ref.slice(spec.ref.lastIndexOf(':') + 1);
  writeFileSync(join(work, 'layout', 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(work, 'layout', 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: `sha256:${manifest.digest}`,
          size: manifest.size,
          annotations: { 'io.containerd.image.name': spec.ref, 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
  execFileSync('tar', ['--create', `--file=${archive}.tmp`, `--directory=${join(work, 'layout')}`, '.']);
  renameSync(`${archive}.tmp`, archive);
  rmSync(work, { recursive: true, force: true });
  return { ref: spec.ref, archive, bytes: layers.reduce((n, l) => n + l.size, 0) };
}

/**
 * The archive for `ref` under `cacheDir`; `prepare` lays out the layers under the staging directory
 * it is given and is called only when no archive for the same ref exists (refs carry a key of their
 * inputs). The staging directory and older archives of the same repository are removed, so the
 * cache holds one archive per image.
 */
export async function cachedImage(
  ref: string,
  cacheDir: string,
  prepare: (stage: string) => Omit<ImageSpec, 'ref'>,
): Promise<BuiltImage> {
  mkdirSync(cacheDir, { recursive: true });
  const base = (r: string): string => r.replace(/[/:]/g, '_');
  const archive = join(cacheDir, `${base(ref)}.tar`);
  const note = `${archive}.bytes`;
  if (existsSync(archive) && existsSync(note)) {
    return { ref, archive, bytes: Number(readFileSync(note, 'utf8')) };
  }
  const stage = `${archive}.stage`;
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  try {
    const built = await buildImage({ ref, ...prepare(stage) }, archive);
    writeFileSync(note, String(built.bytes));
    const repo = base(ref.slice(0, ref.lastIndexOf(':') + 1));
    for (const f of readdirSync(cacheDir)) {
      if (f.startsWith(repo) && !f.startsWith(base(ref)))
        rmSync(join(cacheDir, f), { recursive: true, force: true });
    }
    return built;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}
