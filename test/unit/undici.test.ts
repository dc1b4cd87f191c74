// src/undici.ts reaches into undici's own modules: a new undici version that moves them fails here.
// Run in a child process, so that nothing else has loaded undici's index (which would wire the
// prototype this module wires).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const ROOT = join(import.meta.dirname, '..', '..');

const CHILD = `
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { Agent, retryInterceptor } from ${JSON.stringify(join(ROOT, 'src', 'undici.ts'))};
const server = createServer((_req, res) => res.end('ok'));
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const agent = new Agent();
const d = agent.compose(retryInterceptor({ maxRetries: 0 }));
const res = await d.request({ origin: 'http://127.0.0.1:' + server.address().port, path: '/', method: 'GET' });
const text = await res.body.text();
await agent.close();
server.close();
const require = createRequire(${JSON.stringify(join(ROOT, 'package.json'))});
const indexLoaded = require.resolve('undici') in require.cache;
const full = require('undici');
console.log(JSON.stringify({
  status: res.statusCode, text, indexLoaded,
  sameAgent: Agent === full.Agent, sameRetry: retryInterceptor === full.interceptors.retry,
}));
`;

describe('undici slice (src/undici.ts)', () => {
  it("requests through undici's Agent and retry interceptor without loading undici's index", () => {
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', CHILD], { encoding: 'utf8' });
    assert.deepEqual(JSON.parse(out), {
      status: 200,
      text: 'ok',
      indexLoaded: false,
      sameAgent: true,
      sameRetry: true,
    });
  });
});
