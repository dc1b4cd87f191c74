#!/usr/bin/env node
// `ferry`, the command a platform team runs: status, lint, doctor (src/command). In the image:
// `node src/cli/ferry.ts`.
import { text } from 'node:stream/consumers';
import { systemClock } from '../clock.ts';
import { main } from '../command/main.ts';

const stop = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => stop.abort());
}

process.exitCode = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  readStdin: () => text(process.stdin),
  clock: systemClock,
  signal: stop.signal,
});
