import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { collectStatus, renderStatus, sortRows } from '../../../src/command/status.ts';
import { event, fakeKube } from './fakes.ts';

const NOW = Date.parse('2026-01-01T12:00:00Z');
const unix = (iso: string) => Date.parse(iso) / 1000;
const cond = (type: string, status: string, reason: string, at = '2026-01-01T11:00:00Z', message = '') => ({
  type,
  status,
  reason,
  message,
  lastTransitionTime: at,
  observedGeneration: 1,
});

const OBJECTS: Record<string, unknown[]> = {
  VaultStaticSecret: [
    {
      metadata: { name: 'config', namespace: 'app' },
      spec: {
        mount: 'secret',
        path: 'app/config',
        type: 'kv-v2',
        refreshAfter: '1m',
        destination: { name: 'app-config' },
      },
      status: { conditions: [cond('SecretSynced', 'True', 'Synced'), cond('Ready', 'True', 'Ready')] },
    },
    {
      metadata: { name: 'broken', namespace: 'app' },
      spec: { mount: 'secret', path: 'app/missing', type: 'kv-v2', destination: { name: 'b' } },
      status: { conditions: [cond('Ready', 'False', 'Unhealthy', '2026-01-01T11:58:00Z', 'failed')] },
    },
  ],
  VaultDynamicSecret: [
    {
      metadata: { name: 'db', namespace: 'app' },
      spec: { mount: 'database', path: 'creds/app', renewalPercent: 50, destination: { name: 'app-db' } },
      status: {
        lastRenewalTime: unix('2026-01-01T10:00:00Z'),
        secretLease: { id: 'database/creds/app/x', duration: 3600, renewable: true, requestID: 'r' },
        conditions: [cond('Ready', 'True', 'Ready')],
      },
    },
  ],
  VaultPKISecret: [
    {
      metadata: { name: 'tls', namespace: 'app' },
      spec: { mount: 'pki', role: 'web', expiryOffset: '1h', destination: { name: 'app-tls' } },
      status: {
        lastRotation: unix('2026-01-01T00:00:00Z'),
        expiration: unix('2026-01-02T00:00:00Z'),
        valid: true,
        error: '',
        lastGeneration: 1,
        conditions: [cond('Ready', 'True', 'Ready')],
      },
    },
  ],
  CSISecrets: [
    {
      metadata: { name: 'protected', namespace: 'app' },
      spec: {
        accessControl: { serviceAccountPattern: '^app$' },
        secrets: {
          vaultStaticSecrets: [
            { mount: 'secret', path: 'a' },
            { mount: 'secret', path: 'b' },
          ],
        },
      },
      status: { conditions: [cond('Ready', 'True', 'Ready')] },
    },
  ],
};

const EVENTS = [
  event(
    { kind: 'VaultStaticSecret', namespace: 'app', name: 'config' },
    'Normal',
    'SecretRotated',
    'Secret synced',
    '2026-01-01T11:30:00Z',
  ),
  event(
    { kind: 'VaultStaticSecret', namespace: 'app', name: 'broken' },
    'Warning',
    'VaultClientError',
    'permission denied',
    '2026-01-01T11:59:00Z',
  ),
];
const kube = () => fakeKube({ ...OBJECTS, Event: EVENTS });

describe('ferry status', () => {
  it('reads the four kinds and their Events only (never a Secret)', async () => {
    const k = kube();
    await collectStatus(k, 'app');
    const asked = k.asked;
    assert.deepEqual(
      asked
        .map((a) => a.split(' ')[0])
        .filter((k) => k !== 'Event')
        .sort(),
      ['CSISecrets', 'VaultDynamicSecret', 'VaultPKISecret', 'VaultStaticSecret'],
    );
    assert.ok(asked.every((a) => !a.startsWith('Secret ')));
    assert.ok(asked.every((a) => a.split(' ')[1] === 'app'));
  });

  it('one row each: last sync, next refresh, lease and certificate expiry, readiness; failing first', async () => {
    const rows = sortRows(await collectStatus(kube(), 'app'), NOW);
    const by = (name: string) => rows.find((r) => r.name === name);
    assert.equal(rows[0]?.name, 'broken');
    assert.deepEqual(
      [by('broken')?.ready, by('broken')?.reason, by('broken')?.message],
      ['False', 'VaultClientError', 'permission denied'],
    );
    assert.equal(by('config')?.lastSync, '2026-01-01T11:30:00Z');
    assert.equal(by('config')?.refresh, 'every 1m');
    assert.equal(by('config')?.source, 'secret/app/config');
    // renewalPercent 50 of a one-hour lease renewed at 10:00: due from 10:30, overdue at noon.
    assert.deepEqual(
      [by('db')?.lastSync, by('db')?.nextRefresh, by('db')?.expires, by('db')?.expiresWhat],
      ['2026-01-01T10:00:00Z', '2026-01-01T10:30:00Z', '2026-01-01T11:00:00Z', 'lease'],
    );
    assert.equal(rows[1]?.name, 'db', 'the most overdue comes next');
    assert.deepEqual(
      [by('tls')?.nextRefresh, by('tls')?.expires, by('tls')?.expiresWhat, by('tls')?.source],
      ['2026-01-01T23:00:00Z', '2026-01-02T00:00:00Z', 'certificate', 'pki/issue/web'],
    );
    assert.deepEqual(
      [by('protected')?.destination, by('protected')?.source],
      ['CSI volume', 'secret/a (+1)'],
    );
  });

  it('renders a table with relative times', async () => {
    const rows = sortRows(await collectStatus(kube(), 'app'), NOW);
    const out = renderStatus(rows, NOW, (_s, t) => t, false);
    const lines = out.trimEnd().split('\n');
    assert.match(
      lines[0] ?? '',
      /^KIND\s+NAME\s+DESTINATION\s+SOURCE\s+LAST SYNC\s+NEXT REFRESH\s+EXPIRES\s+READY\s+REASON$/,
    );
    assert.match(
      lines[1] ?? '',
      /^VaultStaticSecret\s+broken\s+b\s+secret\/app\/missing\s+-\s+-\s+-\s+False\s+VaultClientError: permission denied$/,
    );
    assert.match(
      out,
      /VaultDynamicSecret\s+db\s+app-db\s+database\/creds\/app\s+2h ago\s+1h30m ago\s+lease 1h ago\s+True/,
    );
    assert.match(
      out,
      /VaultPKISecret\s+tls\s+app-tls\s+pki\/issue\/web\s+12h ago\s+in 11h\s+certificate in 12h\s+True/,
    );
    assert.equal(
      renderStatus([], NOW, (_s, t) => t, false),
      'No synced or protected secrets found.\n',
    );
  });
});
