import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AccessControl } from '../../../src/api/v1beta1/csisecrets.ts';
import {
  type AccessSubject,
  CTX,
  checkAccess,
  checkTokenReview,
  fullMatch,
  matchingContainers,
  parsePublishContext,
  restartedMatching,
} from '../../../src/csi/access.ts';
import { CsiError } from '../../../src/csi/errors.ts';

const pod: AccessSubject = {
  name: 'web-7d9f',
  namespace: 'team-a',
  uid: 'c0ffee-1',
  serviceAccount: 'web',
  labels: { app: 'web', tier: 'front' },
};

describe('checkAccess', () => {
  const cases: [string, AccessControl, Partial<Record<keyof AccessSubject, unknown>>, boolean][] = [
    ['SA only, match', { serviceAccountPattern: 'web' }, {}, true],
    ['SA only, no match', { serviceAccountPattern: 'api' }, {}, false],
    ['SA pattern is anchored (no substring match)', { serviceAccountPattern: 'we' }, {}, false],
    [
      'SA pattern is anchored at the end',
      { serviceAccountPattern: 'web' },
      { serviceAccount: 'web-evil' },
      false,
    ],
    ['SA regex', { serviceAccountPattern: 'w.b|api' }, {}, true],
    ['all: namespace ok', { serviceAccountPattern: 'web', namespacePatterns: ['team-.*'] }, {}, true],
    ['all: namespace not ok', { serviceAccountPattern: 'web', namespacePatterns: ['team-b'] }, {}, false],
    [
      'all: one of the namespace patterns',
      { serviceAccountPattern: 'web', namespacePatterns: ['x', 'team-a'] },
      {},
      true,
    ],
    [
      'all: namespace ok but pod name not',
      { serviceAccountPattern: 'web', namespacePatterns: ['team-a'], podNamePatterns: ['api-.*'] },
      {},
      false,
    ],
    [
      'all: namespace, name and labels ok',
      {
        serviceAccountPattern: 'web',
        namespacePatterns: ['team-a'],
        podNamePatterns: ['web-.*'],
        podLabels: { app: 'web' },
      },
      {},
      true,
    ],
    ['all: label value differs', { serviceAccountPattern: 'web', podLabels: { app: 'api' } }, {}, false],
    ['all: label missing', { serviceAccountPattern: 'web', podLabels: { env: 'prod' } }, {}, false],
    [
      'all: labels unknown (not fetched)',
      { serviceAccountPattern: 'web', podLabels: { app: 'web' } },
      { labels: undefined },
      false,
    ],
    [
      'any: namespace fails, labels match → pod labels never widen the namespaces',
      {
        serviceAccountPattern: 'web',
        namespacePatterns: ['team-b'],
        podLabels: { app: 'web' },
        matchPolicy: 'any',
      },
      {},
      false,
    ],
    [
      'any: namespace fails, pod name matches → pod names never widen the namespaces',
      {
        serviceAccountPattern: 'web',
        namespacePatterns: ['team-b'],
        podNamePatterns: ['web-.*'],
        matchPolicy: 'any',
      },
      {},
      false,
    ],
    [
      'any: namespace matches, labels do not → one rule is enough',
      {
        serviceAccountPattern: 'web',
        namespacePatterns: ['team-a'],
        podLabels: { app: 'api' },
        matchPolicy: 'any',
      },
      {},
      true,
    ],
    [
      'any: no namespace patterns, own namespace, labels match',
      { serviceAccountPattern: 'web', podLabels: { app: 'web' }, podNamePatterns: ['x'], matchPolicy: 'any' },
      {},
      true,
    ],
    [
      'no namespace patterns: a pod of another namespace is refused',
      { serviceAccountPattern: 'web' },
      { namespace: 'team-b' },
      false,
    ],
    [
      'no namespace patterns, any: labels do not admit another namespace',
      { serviceAccountPattern: 'web', podLabels: { app: 'web' }, matchPolicy: 'any' },
      { namespace: 'team-b' },
      false,
    ],
    [
      'namespace patterns admit another namespace',
      { serviceAccountPattern: 'web', namespacePatterns: ['team-.*'] },
      { namespace: 'team-b' },
      true,
    ],
    [
      'any: nothing matches',
      {
        serviceAccountPattern: 'web',
        namespacePatterns: ['team-b'],
        podNamePatterns: ['api'],
        matchPolicy: 'any',
      },
      {},
      false,
    ],
    [
      'any: SA still required',
      { serviceAccountPattern: 'api', namespacePatterns: ['team-a'], matchPolicy: 'any' },
      {},
      false,
    ],
    [
      'any: no other rule configured → SA decides',
      { serviceAccountPattern: 'web', matchPolicy: 'any' },
      {},
      true,
    ],
    [
      'empty lists count as not configured',
      { serviceAccountPattern: 'web', namespacePatterns: [], podLabels: {} },
      {},
      true,
    ],
  ];
  for (const [name, ac, over, want] of cases) {
    it(name, () => {
      // The CSISecrets lives in team-a.
      const d = checkAccess(ac, { ...pod, ...over } as AccessSubject, 'team-a');
      assert.equal(d.allowed, want, JSON.stringify(d));
      if (!d.allowed) assert.ok(d.reason.length > 0);
    });
  }

  it('uses RE2 (no backtracking constructs)', () => {
    assert.throws(() => fullMatch('(a)\\1', 'aa'));
    assert.equal(fullMatch('(a+)+$', `${'a'.repeat(5000)}b`), false);
  });
});

describe('parsePublishContext', () => {
  const aud = 'csi.vso.hashicorp.com';
  const base = {
    [CTX.podName]: 'web-7d9f',
    [CTX.podNamespace]: 'team-a',
    [CTX.podUid]: '8d2f3b1e-0000-4000-8000-000000000001',
    [CTX.serviceAccount]: 'web',
    [CTX.ephemeral]: 'true',
    [CTX.tokens]: JSON.stringify({
      [aud]: { token: 'jwt-value', expirationTimestamp: '2030-01-01T00:00:00Z' },
    }),
    csiSecretsName: 'db',
  };
  const code = (fn: () => unknown): string => {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof CsiError);
      assert.ok(!err.message.includes('jwt-value'), 'a token reached an error message');
      return err.code;
    }
    return 'OK';
  };

  it('reads the pod, the CSISecrets reference (namespace defaults to the pod) and the token', () => {
    const c = parsePublishContext(base, aud);
    assert.deepEqual(c.pod, {
      name: 'web-7d9f',
      namespace: 'team-a',
      uid: base[CTX.podUid],
      serviceAccount: 'web',
    });
    assert.deepEqual(c.csiSecrets, { namespace: 'team-a', name: 'db' });
    assert.equal(c.token, 'jwt-value');
    assert.deepEqual(parsePublishContext({ ...base, csiSecretsNamespace: 'shared' }, aud).csiSecrets, {
      namespace: 'shared',
      name: 'db',
    });
  });

  for (const key of [
    CTX.podName,
    CTX.podNamespace,
    CTX.podUid,
    CTX.serviceAccount,
    CTX.tokens,
    'csiSecretsName',
  ]) {
    it(`missing ${key} is INVALID_ARGUMENT`, () => {
      const ctx: Record<string, string> = { ...base };
      delete ctx[key];
      assert.equal(
        code(() => parsePublishContext(ctx, aud)),
        'INVALID_ARGUMENT',
      );
    });
  }
  it('malformed values are INVALID_ARGUMENT', () => {
    for (const over of [
      { [CTX.podNamespace]: 'Team_A' },
      { [CTX.podName]: '../etc' },
      { csiSecretsName: 'a/b' },
      { csiSecretsNamespace: 'x/y' },
      { [CTX.tokens]: 'not json jwt-value' },
      { [CTX.tokens]: JSON.stringify({ other: { token: 'jwt-value' } }) },
      { [CTX.tokens]: JSON.stringify({ [aud]: { token: '' } }) },
      { [CTX.tokens]: 'null' },
    ]) {
      assert.equal(
        code(() => parsePublishContext({ ...base, ...over }, aud)),
        'INVALID_ARGUMENT',
        JSON.stringify(Object.keys(over)),
      );
    }
  });
});

describe('checkTokenReview', () => {
  const aud = 'csi.vso.hashicorp.com';
  const ok = {
    authenticated: true,
    audiences: [aud],
    user: {
      username: 'system:serviceaccount:team-a:web',
      extra: {
        'authentication.kubernetes.io/pod-name': ['web-7d9f'],
        'authentication.kubernetes.io/pod-uid': ['c0ffee-1'],
      },
    },
  };
  it('accepts a token bound to this pod and SA for the audience', () => {
    assert.deepEqual(checkTokenReview(ok, pod, aud), { allowed: true });
  });
  const bad: [string, object][] = [
    ['unauthenticated', { ...ok, authenticated: false }],
    ['other audience', { ...ok, audiences: ['vault'] }],
    ['no audiences in the review', { ...ok, audiences: undefined }],
    ['other SA', { ...ok, user: { ...ok.user, username: 'system:serviceaccount:team-a:api' } }],
    ['other namespace', { ...ok, user: { ...ok.user, username: 'system:serviceaccount:team-b:web' } }],
    ['not pod bound', { ...ok, user: { username: ok.user.username } }],
    [
      'another pod',
      {
        ...ok,
        user: { ...ok.user, extra: { ...ok.user.extra, 'authentication.kubernetes.io/pod-uid': ['other'] } },
      },
    ],
    ['a user, not a SA', { ...ok, user: { ...ok.user, username: 'admin' } }],
  ];
  for (const [name, review] of bad) {
    it(`refuses: ${name}`, () => {
      assert.equal(checkTokenReview(review, pod, aud).allowed, false);
    });
  }
});

describe('syncConfig.containerState', () => {
  const pod = (restarts: Record<string, number> = {}) => ({
    spec: {
      containers: [
        { name: 'app', image: 'registry.example/app:1.0' },
        { name: 'proxy', image: 'registry.example/proxy:2.0' },
      ],
    },
    status: {
      containerStatuses: Object.entries(restarts).map(([name, restartCount]) => ({ name, restartCount })),
    },
  });

  it('matches containers on every set pattern, whole values', () => {
    assert.deepEqual(matchingContainers({ namePattern: 'app' }, pod()), ['app']);
    assert.deepEqual(matchingContainers({ imagePattern: 'registry\\.example/.*' }, pod()), ['app', 'proxy']);
    assert.deepEqual(matchingContainers({ namePattern: 'app', imagePattern: '.*proxy.*' }, pod()), []);
    assert.deepEqual(matchingContainers({ namePattern: 'ap' }, pod()), [], 'anchored');
    assert.deepEqual(matchingContainers({}, pod()), ['app', 'proxy']);
  });

  it('a restart is a higher restartCount of a matching container', () => {
    const cs = { namePattern: 'app' };
    assert.equal(restartedMatching(cs, pod({ app: 0 }), pod({ app: 1 })), true);
    assert.equal(restartedMatching(cs, pod(), pod({ app: 1 })), true);
    assert.equal(restartedMatching(cs, pod({ app: 1 }), pod({ app: 1 })), false);
    assert.equal(restartedMatching(cs, pod({ proxy: 0 }), pod({ proxy: 3 })), false, 'not matching');
    assert.equal(restartedMatching(cs, pod(), pod({ app: 0 })), false, 'a first start is not a restart');
  });
});
