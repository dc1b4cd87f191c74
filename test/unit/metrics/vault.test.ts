// Vault metrics: Ferry's ferry_vault_* and VSO's vso_* families as Prometheus exposes them (name,
// type, labels), fed by the Vault client's request observer against a loopback fake Vault.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MetricsRegistry, registerBuildInfo, registerRuntimeConfig } from '../../../src/metrics/registry.ts';
import {
  requestOperation,
  requestResult,
  vaultMetrics,
  vaultRequestObserver,
  vsoOperation,
} from '../../../src/metrics/vault.ts';
import { VaultClient } from '../../../src/vault/client.ts';
import { FakeVault } from '../vault/helpers.ts';

/** `# TYPE` of every family in an exposition text. */
const typesOf = (text: string): Map<string, string> =>
  new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));

/** The label sets of a family's samples (for histograms, of its _count series). */
const labelsOf = (text: string, name: string): Record<string, string>[] =>
  [...text.matchAll(new RegExp(`^${name}\\{([^}]*)\\} `, 'gm'))].map((m) =>
    Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!])),
  );

describe('Vault request classification', () => {
  it('maps verbs and statuses to operations and results', () => {
    assert.deepEqual(['GET', 'LIST', 'PUT', 'POST', 'DELETE'].map(requestOperation), [
      'read',
      'list',
      'write',
      'write',
      'delete',
    ]);
    assert.deepEqual([200, 204, 404, 403, 400, 500, 503, undefined].map(requestResult), [
      'success',
      'success',
      'not_found',
      'client_error',
      'client_error',
      'server_error',
      'server_error',
      'transport_error',
    ]);
  });

  it("tells VSO's login, renew, read and write apart", () => {
    assert.equal(vsoOperation('PUT', 'auth/kubernetes/login'), 'login');
    assert.equal(vsoOperation('POST', 'auth/approle/login'), 'login');
    assert.equal(vsoOperation('PUT', 'auth/userpass/login/alice'), 'login');
    assert.equal(vsoOperation('PUT', 'auth/token/renew-self'), 'renew');
    assert.equal(vsoOperation('GET', 'kvv2/data/app'), 'read');
    assert.equal(vsoOperation('LIST', 'kvv2/metadata'), 'read');
    assert.equal(vsoOperation('PUT', 'sys/leases/renew'), 'write');
    assert.equal(vsoOperation('GET', 'auth/kubernetes/login'), 'read');
  });
});

describe('Vault metrics exposition', () => {
  let vault: FakeVault;
  before(async () => {
    vault = await FakeVault.start();
  });
  after(async () => {
    await vault.close();
  });

  it("exports ferry_vault_* and VSO's vso_* families with their types and labels", async () => {
    const registry = new MetricsRegistry();
    const m = vaultMetrics(registry);
    vault.handler = (req) => {
      if (req.path === '/v1/auth/kubernetes/login')
        return { status: 200, body: { auth: { client_token: 't' } } };
      if (req.path === '/v1/kvv2/data/app') return { status: 200, body: { data: { data: {} } } };
      if (req.path === '/v1/secret/denied') return { status: 403, body: { errors: ['permission denied'] } };
      return { status: 404, body: { errors: [] } };
    };
    const client = new VaultClient({
      address: vault.address,
      retry: { maxRetries: 0, minDelayMs: 1, maxDelayMs: 1 },
      onRequest: vaultRequestObserver(m, 'ops/default'),
    });
    await client.write('auth/kubernetes/login', { role: 'r', jwt: 'canary-jwt-value' });
    const scoped = client.withToken('canary-token-value');
    await scoped.read('kvv2/data/app');
    assert.equal(await scoped.read('kvv2/data/missing'), undefined);
    await assert.rejects(scoped.read('secret/denied'));
    const down = new VaultClient({
      address: 'http://127.0.0.1:1',
      retry: { maxRetries: 0, minDelayMs: 1, maxDelayMs: 1 },
      onRequest: vaultRequestObserver(m, 'ops/down'),
    });
    await assert.rejects(down.read('kvv2/data/app'));
    await Promise.all([client.close(), down.close()]);
    // Cache, factory and storage families, as the resolver feeds them.
    m.cacheSize.set({}, 10_000);
    m.cacheLength.set({}, 1);
    m.cacheHits.inc({});
    m.cacheMisses.inc({});
    m.cacheEvictions.inc({});
    m.factoryRequests.inc({ operation: 'get' });
    m.factoryRequestErrors.inc({ operation: 'get' });
    m.factoryOperationTime.observe({ component: 'client_factory', operation: 'get' }, 0.01);
    m.storageConfig.set({ enforce_encryption: 'true' }, 1);
    for (const c of [
      m.storageRequests,
      m.storageRequestErrors,
      m.storageOperations,
      m.storageOperationErrors,
    ]) {
      c.inc({ operation: 'store' });
    }
    registerBuildInfo(registry, {
      version: '0.1.0',
      gitCommit: 'abc',
      nodeVersion: 'v24.0.0',
      platform: 'linux/x64',
    });
    registerRuntimeConfig(registry, { clientCacheSize: '10000', clientCachePersistenceModel: '' });

    const text = await registry.metrics();
    const types = typesOf(text);
    const want: Record<string, [string, string[]]> = {
      ferry_vault_requests_total: ['counter', ['operation', 'result']],
      ferry_vault_request_duration_seconds: ['histogram', ['operation']],
      vso_client_operations_total: ['counter', ['operation', 'vault_connection']],
      vso_client_operations_errors_total: ['counter', ['operation', 'vault_connection']],
      vso_client_operations_time_seconds: ['histogram', ['operation', 'vault_connection']],
      vso_client_cache_size: ['gauge', []],
      vso_client_cache_length: ['gauge', []],
      vso_client_cache_hits: ['counter', []],
      vso_client_cache_misses: ['counter', []],
      vso_client_cache_evictions: ['gauge', []],
      vso_client_factory_requests_total: ['counter', ['operation']],
      vso_client_factory_requests_errors_total: ['counter', ['operation']],
      vso_client_factory_operations_time_seconds: ['histogram', ['component', 'operation']],
      vso_client_cache_storage_config: ['gauge', ['enforce_encryption']],
      vso_client_cache_storage_requests_total: ['counter', ['operation']],
      vso_client_cache_storage_requests_errors_total: ['counter', ['operation']],
      vso_client_cache_storage_operations_total: ['counter', ['operation']],
      vso_client_cache_storage_operations_errors_total: ['counter', ['operation']],
      vso_build_info: [
        'gauge',
        [
          'major',
          'minor',
          'git_version',
          'git_commit',
          'git_tree_state',
          'build_date',
          'go_version',
          'compiler',
          'platform',
        ],
      ],
      vso_runtime_config: ['gauge', ['clientCacheSize', 'clientCachePersistenceModel']],
    };
    for (const [name, [type, labels]] of Object.entries(want)) {
      assert.equal(types.get(name), type, `${name} type`);
      const series = type === 'histogram' ? `${name}_count` : name;
      if (labels.length === 0) {
        assert.match(text, new RegExp(`^${series} \\d`, 'm'), `${name} has an unlabelled sample`);
        continue;
      }
      const sets = labelsOf(text, series);
      assert.ok(sets.length > 0, `${name} has samples`);
      for (const s of sets) assert.deepEqual(Object.keys(s).sort(), [...labels].sort(), `${name} labels`);
    }

    const ops = labelsOf(text, 'vso_client_operations_total');
    assert.deepEqual(
      new Set(ops.map((l) => `${l.operation}@${l.vault_connection}`)),
      new Set(['login@ops/default', 'read@ops/default', 'read@ops/down']),
    );
    // A 404 is an answer; 403 and a refused connection are errors.
    const errs = text.match(/^vso_client_operations_errors_total\{.*\} \d+$/gm) ?? [];
    assert.deepEqual(errs.sort(), [
      'vso_client_operations_errors_total{operation="read",vault_connection="ops/default"} 1',
      'vso_client_operations_errors_total{operation="read",vault_connection="ops/down"} 1',
    ]);
    for (const result of ['success', 'not_found', 'client_error', 'transport_error']) {
      assert.match(
        text,
        new RegExp(`^ferry_vault_requests_total\\{operation="read",result="${result}"\\} 1$`, 'm'),
      );
    }
    assert.match(text, /^ferry_vault_requests_total\{operation="write",result="success"\} 1$/m);
    // Paths and credentials never become labels.
    for (const leak of ['canary-token-value', 'canary-jwt-value', 'kvv2/data', 'denied']) {
      assert.ok(!text.includes(leak), leak);
    }
  });
});
