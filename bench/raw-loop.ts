// The benchmark's practical limit: plain HTTP clients doing what an operator must for the workload of
// bench/lib/workload.ts, and nothing else. Per namespace one TokenRequest and one Vault login; then
// every `--refresh` seconds each secret is read from Vault and, when its value is new, written to its
// Secret (server-side apply), `--concurrency` at a time. Run by bench/operators.ts as a process.
//   node bench/raw-loop.ts --kubeconfig F --vault URL --n N [--concurrency 100] [--refresh 30]
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { KubeClient } from '../src/k8s/client.ts';
import { loadKubeConnection } from '../src/k8s/config.ts';
import { Secrets } from '../src/k8s/resources.ts';
import { benchArgs } from './lib/args.ts';
import { NAMESPACES, nameOf, nsOf, pool, roleOf } from './lib/workload.ts';

const values = benchArgs({ kubeconfig: '', vault: '', n: 0, concurrency: 100, refresh: 30 });
const n = values.n;
const vault = values.vault;
const kube = new KubeClient(loadKubeConnection({ kubeconfig: values.kubeconfig, env: {} }));
const agent = new Agent({ connections: values.concurrency, keepAliveTimeout: 30_000 });

async function vaultCall(
  method: 'GET' | 'POST',
  path: string,
  token?: string,
  body?: unknown,
): Promise<Record<string, unknown>> {
  const res = await request(`${vault}/v1/${path}`, {
    method,
    dispatcher: agent,
    headers: { 'content-type': 'application/json', ...(token ? { 'x-vault-token': token } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.body.text();
  if (res.statusCode >= 300) throw new Error(`vault ${method} ${path}: HTTP ${res.statusCode}`);
  return JSON.parse(text) as Record<string, unknown>;
}

const tokens = new Map<string, string>();
for (let k = 0; k < NAMESPACES; k++) {
  const ns = nsOf(k);
  const jwt = await kube.createToken(ns, 'app', { audiences: ['vault'], expirationSeconds: 3600 });
  const login = await vaultCall('POST', 'auth/kubernetes/login', undefined, {
    role: roleOf(ns),
    jwt: jwt.token,
  });
  tokens.set(ns, (login.auth as { client_token: string }).client_token);
}

const written = new Map<number, string>();
const refreshMs = values.refresh * 1000;
for (;;) {
  const t0 = Date.now();
  await pool(n, values.concurrency, async (i) => {
    const ns = nsOf(i);
    try {
      const r = await vaultCall('GET', `kvv2/data/${ns}/${nameOf(i)}`, tokens.get(ns));
      const data = (r.data as { data: Record<string, string> }).data;
      const json = JSON.stringify(data);
      if (written.get(i) === json) return;
      await kube.patch(
        Secrets,
        nameOf(i),
        ns,
        {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: nameOf(i), namespace: ns },
          data: Object.fromEntries(
            Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
          ),
        },
        'apply',
        { fieldManager: 'raw-loop', force: true },
      );
      written.set(i, json);
    } catch (err) {
      process.stderr.write(`secret ${i}: ${String(err)}\n`);
    }
  });
  await sleep(Math.max(0, refreshMs - (Date.now() - t0)));
}
