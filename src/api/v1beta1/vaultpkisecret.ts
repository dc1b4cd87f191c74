import Type, { type Static } from 'typebox';
import { DURATION_WITH_DAYS_PATTERN } from '../patterns.ts';
import {
  Conditions,
  Destination,
  Duration,
  Int64,
  RolloutRestartTargets,
  Root,
  SecretSourceRefs,
  StringList,
} from './common.ts';

export const VaultPKISecretSpec = Type.Object(
  {
    ...SecretSourceRefs,
    mount: Type.String({ description: 'Mount path of the PKI secrets engine.' }),
    role: Type.String({ description: 'PKI role used to issue certificates.' }),
    issuerRef: Type.Optional(Type.String({ description: 'Issuer ID, issuer name or "default".' })),
    revoke: Type.Optional(
      Type.Boolean({ description: 'Revoke the previous certificate on rotation and on deletion.' }),
    ),
    clear: Type.Optional(
      Type.Boolean({ description: 'On deletion, empty the data of a Secret the operator did not create.' }),
    ),
    expiryOffset: Type.Optional(Duration('Renew this long before the certificate expires, e.g. 1h.')),
    rolloutRestartTargets: Type.Optional(RolloutRestartTargets()),
    destination: Destination,
    commonName: Type.Optional(Type.String({ description: 'Requested common name.' })),
    altNames: Type.Optional(StringList('Requested DNS or email subject alternative names.')),
    ipSans: Type.Optional(StringList('Requested IP subject alternative names.')),
    uriSans: Type.Optional(StringList('Requested URI subject alternative names.')),
    otherSans: Type.Optional(StringList('Requested other SANs, each as "<oid>;<type>:<value>".')),
    userIDs: Type.Optional(StringList('Requested user IDs (UID attribute of the subject).')),
    ttl: Type.Optional(
      Type.String({
        pattern: DURATION_WITH_DAYS_PATTERN,
        description: "Requested certificate lifetime, e.g. 24h or 30d; the role's default when unset.",
      }),
    ),
    format: Type.Optional(Type.String({ description: 'Certificate encoding: pem, der or pem_bundle.' })),
    privateKeyFormat: Type.Optional(
      Type.String({ description: 'Private key encoding, e.g. pkcs8; follows format when unset.' }),
    ),
    notAfter: Type.Optional(
      Type.String({ description: 'Exact expiry as YYYY-MM-ddTHH:MM:SSZ; overrides ttl.' }),
    ),
    excludeCNFromSans: Type.Optional(
      Type.Boolean({ description: 'Do not add the common name to the subject alternative names.' }),
    ),
  },
  { description: 'Which certificate to issue and where to write it.' },
);
export type VaultPKISecretSpec = Static<typeof VaultPKISecretSpec>;

export const VaultPKISecretStatus = Type.Object(
  {
    serialNumber: Type.Optional(Type.String({ description: 'Serial number of the current certificate.' })),
    expiration: Type.Optional(Int64('Unix time at which the current certificate expires.')),
    lastGeneration: Int64('metadata.generation of the last reconciled spec.'),
    lastRotation: Int64('Unix time of the last issue.'),
    secretMAC: Type.Optional(Type.String({ description: 'HMAC of the synced data, for drift detection.' })),
    valid: Type.Boolean({ description: 'The last sync succeeded.' }),
    error: Type.String({ description: 'Why the last sync failed.' }),
    conditions: Type.Optional(Conditions()),
  },
  { description: 'Observed state of the VaultPKISecret.' },
);
export type VaultPKISecretStatus = Static<typeof VaultPKISecretStatus>;

export const VaultPKISecretSchema = Root(
  'Issues a certificate from a Vault PKI engine into a Kubernetes Secret and renews it before expiry.',
  VaultPKISecretSpec,
  VaultPKISecretStatus,
);
export type VaultPKISecret = Static<typeof VaultPKISecretSchema>;
