// The images the node runs, built here from what this machine has (nothing is pulled):
//   ferry.local/ferry  the operator and CSI driver: Node 24 from the npm package, production
//                      dependencies, src/ — the Dockerfile's layout (/app, /usr/local/bin/node, uid 65532)
//   ferry.local/pause  the sandbox image: kubernetes' pause.c, compiled with the kube peer
//   ferry.local/test   workloads for tests: busybox-static with its applets, and psql
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { type BuiltImage, cachedImage } from './image.ts';

/** Bumped when a recipe below changes in a way its inputs do not show. */
const RECIPE = '3';

export interface NodeImages {
  ferry: BuiltImage;
  pause: BuiltImage;
  test: BuiltImage;
}

function hashInputs(parts: (string | Buffer)[]): string {
  const h = createHash('sha256').update(RECIPE);
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex').slice(0, 16);
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out.sort();
}

/** Copies `binary` to `root/dest` with the shared libraries ldd resolves for it (and the loader). */
function copyWithLibs(binary: string, root: string, dest: string): void {
  mkdirSync(dirname(join(root, dest)), { recursive: true });
  copyFileSync(binary, join(root, dest));
  const ldd = execFileSync('ldd', [binary], { encoding: 'utf8' });
  for (const m of ldd.matchAll(/(\/\S+\.so[.\d]*)\s+\(0x/g)) {
    const lib = m[1] as string;
    const target = join(root, lib);
    if (existsSync(target)) continue;
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(lib, target); // follows the symlink: the real file under the soname
  }
}

function baseRoot(root: string): void {
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(
    join(root, 'etc', 'passwd'),
    'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n',
  );
  writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\nnonroot:x:65532:\n');
  mkdirSync(join(root, 'tmp'));
  chmodSync(join(root, 'tmp'), 0o1777);
}

export async function ferryImage(
  repoRoot: string,
  cacheDir: string,
  log: (m: string) => void,
): Promise<BuiltImage> {
  const nodeBin = join(repoRoot, 'node_modules', 'node', 'bin', 'node');
  const src = filesUnder(join(repoRoot, 'src'));
  const key = hashInputs([
    readFileSync(join(repoRoot, 'package.json')),
    readFileSync(join(repoRoot, 'package-lock.json')),
    String(statSync(nodeBin).size),
    ...src.flatMap((f) => [relative(repoRoot, f), readFileSync(f)]),
  ]);
  return cachedImage(`ferry.local/ferry:${key}`, cacheDir, (stage) => {
    log('building the Ferry image (Node 24, production dependencies, src/)');
    const [base, deps, app] = ['base', 'deps', 'app'].map((l) => join(stage, l)) as [string, string, string];
    baseRoot(base);
    copyWithLibs(nodeBin, base, 'usr/local/bin/node');
    execFileSync('strip', [join(base, 'usr/local/bin/node')]);
    // The CSI driver mounts and unmounts its tmpfs volumes with util-linux, as on node:24-slim.
    for (const tool of ['mount', 'umount']) copyWithLibs(`/usr/bin/${tool}`, base, `usr/bin/${tool}`);
    mkdirSync(join(deps, 'app'), { recursive: true });
    for (const f of ['package.json', 'package-lock.json'])
      copyFileSync(join(repoRoot, f), join(deps, 'app', f));
    // Production dependencies only; none needs an install script (as the Dockerfile).
    execFileSync(
      'npm',
      ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'],
      {
        cwd: join(deps, 'app'),
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    );
    rmSync(join(deps, 'app', 'package.json'));
    rmSync(join(deps, 'app', 'package-lock.json'));
    mkdirSync(join(app, 'app'), { recursive: true });
    copyFileSync(join(repoRoot, 'package.json'), join(app, 'app', 'package.json'));
    cpSync(join(repoRoot, 'src'), join(app, 'app', 'src'), { recursive: true });
    warmCompileCache(nodeBin, join(app, 'app'), join(deps, 'app', 'node_modules'));
    return {
      layers: [base, deps, app],
      config: {
        User: '65532:65532',
        WorkingDir: '/app',
        Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'NODE_ENV=production', ...IMAGE_NODE_ENV],
        Entrypoint: ['node', 'src/cli/operator.ts'],
        ExposedPorts: { '8080/tcp': {}, '8081/tcp': {} },
      },
    };
  });
}

// The Dockerfile's ENV: a compile cache that spares the processes Node's TypeScript stripper
// (docs/memory.md), portable because it is filled outside /app here, and V8's young generation
// capped (filled under the same flags: V8 rejects code cached under others).
const COMPILE_CACHE_DIR = '.node-compile-cache';
/** The image's V8 flags; the benchmarks run Ferry's process with them too. */
export const NODE_OPTIONS = '--max-semi-space-size=4 --max-old-space-size-percentage=50';
const IMAGE_NODE_ENV = [
  `NODE_COMPILE_CACHE=/app/${COMPILE_CACHE_DIR}`,
  'NODE_COMPILE_CACHE_PORTABLE=1',
  `NODE_OPTIONS=${NODE_OPTIONS}`,
];
const CACHE_UIDS = [65532, 0];

/** As the Dockerfile's `RUN node src/cli/compile-cache.ts`, for the layout under `appDir`. Node keeps
 * one cache directory per uid (`v<version>-<arch>-<hash>-<uid>`): the one filled here is copied for
 * the uids the chart runs the image as. */
function warmCompileCache(nodeBin: string, appDir: string, nodeModules: string): void {
  const cache = join(appDir, COMPILE_CACHE_DIR);
  symlinkSync(nodeModules, join(appDir, 'node_modules'));
  try {
    execFileSync(nodeBin, [join(appDir, 'src', 'cli', 'compile-cache.ts')], {
      cwd: appDir,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        NODE_COMPILE_CACHE: cache,
        NODE_COMPILE_CACHE_PORTABLE: '1',
        NODE_OPTIONS,
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  } finally {
    rmSync(join(appDir, 'node_modules'));
  }
  const uid = process.getuid?.() ?? 0;
  for (const d of readdirSync(cache)) {
    const base = d.replace(new RegExp(`-${uid}$`), '');
    for (const f of readdirSync(join(cache, d))) chmodSync(join(cache, d, f), 0o644);
    chmodSync(join(cache, d), 0o755);
    // The operator runs as 65532, the CSI driver as root.
    for (const u of CACHE_UIDS)
      if (u !== uid) cpSync(join(cache, d), join(cache, `${base}-${u}`), { recursive: true });
    if (!CACHE_UIDS.includes(uid)) rmSync(join(cache, d), { recursive: true });
  }
}

export async function pauseImage(pauseBinary: string, cacheDir: string): Promise<BuiltImage> {
  const key = hashInputs([readFileSync(pauseBinary)]);
  return cachedImage(`ferry.local/pause:${key}`, cacheDir, (root) => {
    copyFileSync(pauseBinary, join(root, 'pause'));
    return { layers: [root], config: { User: '65535:65535', Entrypoint: ['/pause'] } };
  });
}

const BUSYBOX = '/bin/busybox';

export async function testImage(psql: string, cacheDir: string): Promise<BuiltImage> {
  const key = hashInputs([readFileSync(BUSYBOX), readFileSync(psql)]);
  return cachedImage(`ferry.local/test:${key}`, cacheDir, (root) => {
    baseRoot(root);
    mkdirSync(join(root, 'bin'));
    copyFileSync(BUSYBOX, join(root, 'bin', 'busybox'));
    const applets = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
    for (const a of applets) if (a !== 'busybox') symlinkSync('busybox', join(root, 'bin', a));
    copyWithLibs(psql, root, 'usr/bin/psql');
    return {
      layers: [root],
      config: { Env: ['PATH=/usr/bin:/bin'], Cmd: ['sh'] },
    };
  });
}
