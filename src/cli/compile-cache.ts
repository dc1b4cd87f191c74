// Fills Node's compile cache for the image (Dockerfile, stack/lib/images.ts): run at build time with
// NODE_COMPILE_CACHE set (and NODE_COMPILE_CACHE_PORTABLE=1, so the cache may move with /app). With
// every module's type-stripped source and code cache there, the processes never load Node's
// TypeScript stripper (amaro, a WebAssembly module), which costs ~30 MB of RSS (docs/memory.md).
import { flushCompileCache, getCompileCacheDir } from 'node:module';

if (getCompileCacheDir() === undefined) {
  process.stderr.write('compile-cache: NODE_COMPILE_CACHE is not set\n');
  process.exit(1);
}
// Loading an entry point strips and compiles it and everything it imports. Each one parses its
// flags before anything else, so an unknown flag stops it before it does any work.
for (const entry of ['./operator.ts', './csi-driver.ts']) {
  process.argv = [process.argv[0] ?? 'node', entry, '--compile-cache-only'];
  try {
    await import(entry);
    throw new Error(`${entry} ran instead of rejecting --compile-cache-only`);
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw err;
  }
}
flushCompileCache();
