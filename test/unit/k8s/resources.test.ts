import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFerryError } from '../../../src/errors.ts';
import {
  ArgoRollouts,
  apiVersionOf,
  ClusterRoles,
  ConfigMaps,
  CustomResourceDefinitions,
  Deployments,
  Leases,
  Namespaces,
  resourcePath,
  Secrets,
} from '../../../src/k8s/resources.ts';

describe('resourcePath', () => {
  it('builds core and grouped paths, namespaced and cluster-scoped', () => {
    assert.equal(resourcePath(Secrets, { namespace: 'ns', name: 's' }), '/api/v1/namespaces/ns/secrets/s');
    assert.equal(resourcePath(Secrets), '/api/v1/secrets');
    assert.equal(resourcePath(ConfigMaps, { namespace: 'ns' }), '/api/v1/namespaces/ns/configmaps');
    assert.equal(
      resourcePath(Deployments, { namespace: 'ns', name: 'd', subresource: 'status' }),
      '/apis/apps/v1/namespaces/ns/deployments/d/status',
    );
    assert.equal(
      resourcePath(Leases, { namespace: 'ns', name: 'l' }),
      '/apis/coordination.k8s.io/v1/namespaces/ns/leases/l',
    );
    assert.equal(
      resourcePath(ArgoRollouts, { namespace: 'ns' }),
      '/apis/argoproj.io/v1alpha1/namespaces/ns/rollouts',
    );
    assert.equal(resourcePath(Namespaces, { name: 'ns', namespace: 'ignored' }), '/api/v1/namespaces/ns');
    assert.equal(
      resourcePath(CustomResourceDefinitions, { name: 'x.example.com' }),
      '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/x.example.com',
    );
    assert.equal(
      resourcePath(ClusterRoles, { name: 'r' }),
      '/apis/rbac.authorization.k8s.io/v1/clusterroles/r',
    );
  });

  it('rejects a named namespaced object without a namespace, and unsafe segments', () => {
    const bad = (f: () => unknown) => assert.throws(f, (e: unknown) => isFerryError(e));
    bad(() => resourcePath(Secrets, { name: 's' }));
    bad(() => resourcePath(Secrets, { namespace: 'ns', name: '..' }));
    bad(() => resourcePath(Secrets, { namespace: 'ns', subresource: 'status' }));
    assert.equal(
      resourcePath(Secrets, { namespace: 'ns', name: 'a/b' }),
      '/api/v1/namespaces/ns/secrets/a%2Fb',
    );
  });

  it('derives apiVersion', () => {
    assert.equal(apiVersionOf(Secrets), 'v1');
    assert.equal(apiVersionOf(Deployments), 'apps/v1');
  });
});
