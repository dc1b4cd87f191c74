// A test-only preload (`node --import ./test/support/kill-at-request.ts …`) that SIGKILLs its own
// process at a chosen HTTP request event, to crash the operator at each await of a code path. Both
// of Ferry's clients (src/k8s and src/vault) send through undici, which publishes every request on
// node:diagnostics_channel; this hooks two events of each request:
//   send      undici:request:create — built, not yet written: the server never sees it;
//   answered  undici:request:headers — the server acted and answered, the caller has not seen it.
// What to kill at is read from the JSON file FERRY_KILL_PLAN at every event, so a test can move the
// kill point without restarting the process: `{ "id": "...", "match": "<regexp>", "at": n }`.
// Events whose `<event> <METHOD> <origin><path>` matches are numbered from 1 per plan id; at number
// `at` the process kills itself with SIGKILL, synchronously, inside the publishing call (nothing
// after it runs). With `trace`, each matching event is appended to that file (`<n> <epoch ms> <event>
// <METHOD> <path>`), so a test can run a path once with `at: 0` to learn its steps, or see when a
// process wrote. Never loaded by src/.
import { subscribe } from 'node:diagnostics_channel';
import { appendFileSync, readFileSync } from 'node:fs';

interface UndiciRequest {
  method: string;
  origin: string;
  path: string;
}
interface Plan {
  id: string;
  match: string;
  at: number;
  trace?: string;
}

const planFile = process.env.FERRY_KILL_PLAN ?? '';
let current = { id: '', match: /(?!)/, seen: 0 };

function plan(): Plan | undefined {
  try {
    return JSON.parse(readFileSync(planFile, 'utf8')) as Plan;
  } catch {
    return undefined; // no plan (yet): nothing to count
  }
}

const on =
  (event: 'send' | 'answered') =>
  (message: unknown): void => {
    const p = plan();
    if (!p) return;
    if (p.id !== current.id) current = { id: p.id, match: new RegExp(p.match), seen: 0 };
    const r = (message as { request: UndiciRequest }).request;
    if (!current.match.test(`${event} ${r.method} ${r.origin}${r.path}`)) return;
    current.seen += 1;
    if (p.trace) appendFileSync(p.trace, `${current.seen} ${Date.now()} ${event} ${r.method} ${r.path}\n`);
    if (current.seen === p.at) process.kill(process.pid, 'SIGKILL');
  };

subscribe('undici:request:create', on('send'));
subscribe('undici:request:headers', on('answered'));
