// Labels and annotations Ferry writes on objects it manages. They are VSO's (vso-api.md §4, §6, §9) so
// that Secrets created by VSO are recognised as owned after a switch to Ferry, and vice versa.

export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const LABEL_NAME = 'app.kubernetes.io/name';
export const LABEL_COMPONENT = 'app.kubernetes.io/component';
export const LABEL_OWNER_REF_UID = 'secrets.hashicorp.com/vso-ownerRefUID';

export const MANAGED_BY = 'hashicorp-vso';
export const APP_NAME = 'vault-secrets-operator';

/** Labels on every destination Secret created with `create=true`, plus the owner's UID. */
export function ownerLabels(ownerUid: string): Record<string, string> {
  return {
    [LABEL_MANAGED_BY]: MANAGED_BY,
    [LABEL_NAME]: APP_NAME,
    [LABEL_COMPONENT]: 'secret-sync',
    [LABEL_OWNER_REF_UID]: ownerUid,
  };
}

/** The selector VSO's Secret cache uses: Secrets it created, whatever the owner. */
export const MANAGED_SECRET_SELECTOR = `${LABEL_MANAGED_BY}=${MANAGED_BY},${LABEL_NAME}=${APP_NAME}`;

/** With `--strict-destination-ownership`, the annotation (value `"true"`) by which a Secret's owner
 * lets Ferry write a Secret it did not create: `create: false` or `overwrite: true` (Ferry only). */
export const ANNOTATION_ALLOW_SYNC = 'ferry.secrets.hashicorp.com/allow-sync';

/** On a VaultDynamicSecret's destination (Ferry only): the lease its credentials hold and the replaced
 * leases still to revoke, written with the credentials (src/controllers/vaultdynamicsecret/record.ts). */
export const ANNOTATION_LEASES = 'ferry.secrets.hashicorp.com/leases';

/** Set on a workload's pod template to trigger a rollout restart (value: RFC 3339 time). */
export const ANNOTATION_RESTARTED_AT = 'vso.secrets.hashicorp.com/restartedAt';

/** HMAC key Secret in the operator namespace (immutable, 16 random bytes under `key`). Reusing VSO's
 * name keeps existing status.secretMAC values valid after a switch. */
export const HMAC_KEY_SECRET_NAME = 'vso-cc-storage-hmac-key';
export const HMAC_KEY_DATA_KEY = 'key';
export const HMAC_KEY_LENGTH = 16;
export const HMAC_KEY_SECRET_LABELS: Readonly<Record<string, string>> = Object.freeze({
  [LABEL_MANAGED_BY]: MANAGED_BY,
  [LABEL_NAME]: APP_NAME,
  [LABEL_COMPONENT]: 'client-cache-storage-verification',
});

/** The operator's leader-election Lease (in its namespace): `ferry doctor` finds the operator by it. */
export const LEADER_ELECTION_ID = 'ferry.secrets.hashicorp.com';

/** The CSI driver's default name, VSO's, so pod manifests written for VSO's protected secrets
 * (`csi.driver: csi.vso.hashicorp.com`) mount Ferry's driver unchanged (vso-api.md §17). */
export const DEFAULT_DRIVER_NAME = 'csi.vso.hashicorp.com';
