// GCP auth through GKE Workload Identity, as VSO does it: a ServiceAccount token for the workload
// identity pool is exchanged at Google's STS for a federated access token, which asks IAM Credentials
// for an ID token of the Google service account (audience `https://vault/<role>`). That ID token is the
// `jwt` of Vault's gcp login. Project, cluster location and name default to the GKE metadata server.
import type { Clock } from '../../clock.ts';
import { CODES, FerryError } from '../../errors.ts';
import { cloudCall, cloudJson } from './http.ts';

export interface GcpEndpoints {
  sts: string;
  iamCredentials: string;
  metadata: string;
}

export const GOOGLE_ENDPOINTS: GcpEndpoints = {
  sts: 'https://sts.googleapis.com/v1/token',
  iamCredentials: 'https://iamcredentials.googleapis.com/v1',
  metadata: 'http://metadata.google.internal/computeMetadata/v1',
};

/** The KSA annotation naming the Google service account (GKE Workload Identity). */
export const GCP_SERVICE_ACCOUNT_ANNOTATION = 'iam.gke.io/gcp-service-account';

/** One value of the GKE metadata server (`project/project-id`, `instance/attributes/cluster-name`). */
export async function gcpMetadata(path: string, endpoints: GcpEndpoints = GOOGLE_ENDPOINTS): Promise<string> {
  const url = `${endpoints.metadata}/${path}`;
  const res = await cloudCall(`GCP metadata ${path}`, url, {
    headers: { 'metadata-flavor': 'Google' },
    timeoutMs: 5000,
  }).catch((err: unknown) => {
    throw new FerryError(
      CODES.INVALID_CONFIG,
      `GCP metadata ${path} is not available (not on GKE?); set it in spec.gcp`,
      {
        cause: err,
      },
    );
  });
  const text = res.text.trim();
  if (res.status !== 200 || text === '')
    throw new FerryError(
      CODES.INVALID_CONFIG,
      `GCP metadata ${path} answered HTTP ${res.status}; set it in spec.gcp`,
    );
  return text;
}

/** How long a metadata value is reused. It describes the node's project and cluster, which do not
 * change under a running pod; the expiry only bounds how long a wrong answer could stick. */
export const GCP_METADATA_TTL_MS = 60 * 60_000;

/** gcpMetadata with a cache: logins reuse a value until it expires, concurrent ones share one request,
 * and a failure is not kept (the next login asks again). Holds at most the few paths a login reads. */
export class GcpMetadata {
  readonly #endpoints: GcpEndpoints;
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #values = new Map<string, { value: Promise<string>; until: number }>();

  constructor(endpoints: GcpEndpoints, clock: Clock, ttlMs = GCP_METADATA_TTL_MS) {
    this.#endpoints = endpoints;
    this.#clock = clock;
    this.#ttlMs = ttlMs;
  }

  get(path: string): Promise<string> {
    const now = this.#clock.now();
    const hit = this.#values.get(path);
    if (hit && now < hit.until) return hit.value;
    const value = gcpMetadata(path, this.#endpoints);
    this.#values.set(path, { value, until: now + this.#ttlMs });
    value.catch(() => {
      if (this.#values.get(path)?.value === value) this.#values.delete(path);
    });
    return value;
  }
}

export interface WorkloadIdentity {
  project: string;
  location: string;
  cluster: string;
  /** The Google service account's email. */
  serviceAccount: string;
  vaultRole: string;
}

/** The workload identity pool, which is also the audience of the ServiceAccount token to exchange. */
export const workloadIdentityPool = (project: string): string => `${project}.svc.id.goog`;

/** Exchanges a Kubernetes ServiceAccount token (audience: the pool) for the Google ID token Vault's
 * gcp method accepts. */
export async function gcpIdToken(
  w: WorkloadIdentity,
  ksaToken: string,
  endpoints: GcpEndpoints = GOOGLE_ENDPOINTS,
): Promise<string> {
  const pool = workloadIdentityPool(w.project);
  const provider = `https://container.googleapis.com/v1/projects/${w.project}/locations/${w.location}/clusters/${w.cluster}`;
  const sts = await cloudJson('Google STS token exchange', endpoints.sts, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      subjectToken: ksaToken,
      subjectTokenType: 'urn:ietf:params:oauth:token-type:jwt',
      requestedTokenType: 'urn:ietf:params:oauth:token-type:access_token',
      grantType: 'urn:ietf:params:oauth:grant-type:token-exchange',
      scope: 'https://www.googleapis.com/auth/iam',
      audience: `identitynamespace:${pool}:${provider}`,
    }),
  });
  const accessToken = typeof sts.access_token === 'string' ? sts.access_token : '';
  if (!accessToken) throw new FerryError(CODES.VAULT_AUTH, 'Google STS returned no access token');
  const name = `projects/-/serviceAccounts/${encodeURIComponent(w.serviceAccount)}`;
  const id = await cloudJson(
    'IAM Credentials generateIdToken',
    `${endpoints.iamCredentials}/${name}:generateIdToken`,
    {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${accessToken}` },
      body: JSON.stringify({ audience: `https://vault/${w.vaultRole}`, includeEmail: true }),
    },
  );
  const token = typeof id.token === 'string' ? id.token : '';
  if (!token) throw new FerryError(CODES.VAULT_AUTH, 'IAM Credentials returned no ID token');
  return token;
}
