// AWS IAM auth: Vault's aws method verifies a caller by replaying a signed `sts:GetCallerIdentity`
// request to STS. The operator signs that request (SigV4) with AWS credentials and sends its parts
// (`iam_http_request_method`, `iam_request_url`, `iam_request_headers`, `iam_request_body`, base64)
// to `auth/<mount>/login`, as VSO does through go-secure-stdlib's awsutil.GenerateLoginData. The
// credentials come from the caller on every login (a Secret, or an AssumeRoleWithWebIdentity for
// IRSA), never cached here.
import { createHash, createHmac } from 'node:crypto';
import { CODES, FerryError } from '../../errors.ts';
import type { VaultAuthInfo, VaultClient } from '../client.ts';
import { cloudCall, cloudJson } from './http.ts';
import { type AuthMethod, credential, type LoginExtras, login } from './index.ts';

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string | undefined;
}

/** awsutil's default when no region is configured (and no metadata service answers). */
export const DEFAULT_AWS_REGION = 'us-east-1';
const STS_BODY = 'Action=GetCallerIdentity&Version=2011-06-15';
const FORM = 'application/x-www-form-urlencoded; charset=utf-8';

/** STS for a region: the global endpoint for us-east-1 (Vault's default `sts_endpoint`), else the
 * regional one (Vault must then be configured with that endpoint and region, as with VSO). */
export function stsUrl(region: string): string {
  return region === DEFAULT_AWS_REGION
    ? 'https://sts.amazonaws.com/'
    : `https://sts.${region}.amazonaws.com/`;
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const hmac = (key: Buffer | string, s: string): Buffer => createHmac('sha256', key).update(s).digest();

export interface SignInput {
  method: string;
  url: URL;
  /** Header names as sent; all of them are signed. `host` is added from the URL. */
  headers: Record<string, string>;
  body: string;
  service: string;
  region: string;
  credentials: AwsCredentials;
  /** `YYYYMMDDTHHMMSSZ`. */
  amzDate: string;
}

/** AWS Signature Version 4: the `Authorization` header value for a request whose headers already
 * carry `x-amz-date` (and `x-amz-security-token` for temporary credentials). */
export function sigV4Authorization(r: SignInput): string {
  const headers = new Map<string, string>([['host', r.url.host]]);
  for (const [k, v] of Object.entries(r.headers)) headers.set(k.toLowerCase(), v.trim().replace(/\s+/g, ' '));
  const names = [...headers.keys()].sort();
  const signedHeaders = names.join(';');
  const query = [...r.url.searchParams]
    .map(([k, v]) => [encodeURIComponent(k), encodeURIComponent(v)])
    .sort(([a = '', x = ''], [b = '', y = '']) => (a === b ? (x < y ? -1 : 1) : a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonical = [
    r.method,
    r.url.pathname || '/',
    query,
    ...names.map((n) => `${n}:${headers.get(n)}`),
    '',
    signedHeaders,
    sha256(r.body),
  ].join('\n');
  const date = r.amzDate.slice(0, 8);
  const scope = `${date}/${r.region}/${r.service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', r.amzDate, scope, sha256(canonical)].join('\n');
  const key = hmac(
    hmac(hmac(hmac(`AWS4${r.credentials.secretAccessKey}`, date), r.region), r.service),
    'aws4_request',
  );
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  return `AWS4-HMAC-SHA256 Credential=${r.credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
}

export const amzDate = (ms: number): string =>
  new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');

/** The login fields of a signed `sts:GetCallerIdentity` (headers as Go's http.Header JSON, with
 * canonical names, as Vault decodes them). `headerValue` becomes the signed
 * `X-Vault-AWS-IAM-Server-ID` header Vault may require. */
export function awsLoginData(
  credentials: AwsCredentials,
  opts: { region: string; headerValue?: string | undefined; now: number },
): Record<string, string> {
  const url = new URL(stsUrl(opts.region));
  const headers: Record<string, string> = { 'Content-Type': FORM, 'X-Amz-Date': amzDate(opts.now) };
  if (credentials.sessionToken) headers['X-Amz-Security-Token'] = credentials.sessionToken;
  if (opts.headerValue) headers['X-Vault-Aws-Iam-Server-Id'] = opts.headerValue;
  const authorization = sigV4Authorization({
    method: 'POST',
    url,
    headers,
    body: STS_BODY,
    service: 'sts',
    region: opts.region,
    credentials,
    amzDate: headers['X-Amz-Date'] ?? '',
  });
  const goHeader = Object.fromEntries(
    Object.entries({ ...headers, Authorization: authorization }).map(([k, v]) => [k, [v]]),
  );
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return {
    iam_http_request_method: 'POST',
    iam_request_url: b64(url.toString()),
    iam_request_headers: b64(JSON.stringify(goHeader)),
    iam_request_body: b64(STS_BODY),
  };
}

export interface AwsAuthOptions extends LoginExtras {
  mount: string;
  role: string;
  region: string;
  headerValue?: string | undefined;
  getCredentials: () => Promise<AwsCredentials>;
  now: () => number;
}

export function awsAuth(opts: AwsAuthOptions): AuthMethod {
  return {
    method: 'aws',
    mount: opts.mount,
    async login(client: VaultClient, signal?: AbortSignal): Promise<VaultAuthInfo> {
      const credentials = await credential('AWS credentials', opts.getCredentials);
      const data = awsLoginData(credentials, {
        region: opts.region,
        headerValue: opts.headerValue,
        now: opts.now(),
      });
      return login(client, opts.mount, { ...data, role: opts.role }, opts, signal);
    },
  };
}

const xmlField = (xml: string, tag: string): string | undefined =>
  new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml)?.[1];

/** `sts:AssumeRoleWithWebIdentity` (unsigned; the web identity token is the credential), as the AWS
 * SDK does for IRSA. STS error bodies are not echoed: they may quote the request. */
export async function assumeRoleWithWebIdentity(o: {
  stsEndpoint: string;
  roleArn: string;
  sessionName: string;
  token: string;
}): Promise<AwsCredentials> {
  const body = new URLSearchParams({
    Action: 'AssumeRoleWithWebIdentity',
    Version: '2011-06-15',
    RoleArn: o.roleArn,
    RoleSessionName: o.sessionName,
    WebIdentityToken: o.token,
  }).toString();
  const res = await cloudCall(`AssumeRoleWithWebIdentity for ${o.roleArn}`, o.stsEndpoint, {
    method: 'POST',
    headers: { 'content-type': FORM, accept: 'application/xml' },
    body,
  });
  const text = res.text;
  if (res.status !== 200) {
    const code = xmlField(text, 'Code') ?? 'unknown error';
    throw new FerryError(
      CODES.VAULT_AUTH,
      `AssumeRoleWithWebIdentity for ${o.roleArn} at ${o.stsEndpoint} failed: HTTP ${res.status} ${code}`,
    );
  }
  const accessKeyId = xmlField(text, 'AccessKeyId');
  const secretAccessKey = xmlField(text, 'SecretAccessKey');
  if (!accessKeyId || !secretAccessKey)
    throw new FerryError(
      CODES.VAULT_AUTH,
      `AssumeRoleWithWebIdentity at ${o.stsEndpoint} returned no credentials`,
    );
  return { accessKeyId, secretAccessKey, sessionToken: xmlField(text, 'SessionToken') };
}

type Env = Record<string, string | undefined>;

/** The AWS SDK's instance metadata service and ECS container-credentials host. */
const IMDS = 'http://169.254.169.254';
const ECS = 'http://169.254.170.2';

function fromJson(o: Record<string, unknown>, what: string): AwsCredentials {
  const { AccessKeyId, SecretAccessKey, Token } = o;
  if (
    typeof AccessKeyId !== 'string' ||
    typeof SecretAccessKey !== 'string' ||
    !AccessKeyId ||
    !SecretAccessKey
  )
    throw new FerryError(CODES.VAULT_AUTH, `${what} returned no credentials`);
  return {
    accessKeyId: AccessKeyId,
    secretAccessKey: SecretAccessKey,
    sessionToken: typeof Token === 'string' ? Token : undefined,
  };
}

/**
 * The operator's own AWS credentials (VSO: the node role or instance profile, through the SDK's
 * default chain), in the SDK's order: environment keys; web identity (`AWS_ROLE_ARN` +
 * `AWS_WEB_IDENTITY_TOKEN_FILE`, which is how EKS gives a pod its IRSA role); ECS container
 * credentials; EC2 instance metadata (IMDSv2). The shared credentials file is not read.
 */
export async function ambientAwsCredentials(o: {
  env: Env;
  stsEndpoint: string;
  sessionName: string;
  readFile: (path: string) => Promise<string>;
}): Promise<AwsCredentials> {
  const env = o.env;
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY)
    return {
      accessKeyId: env.AWS_ACCESS_KEY_ID,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
      sessionToken: env.AWS_SESSION_TOKEN || undefined,
    };
  if (env.AWS_ROLE_ARN && env.AWS_WEB_IDENTITY_TOKEN_FILE) {
    const token = (await o.readFile(env.AWS_WEB_IDENTITY_TOKEN_FILE)).trim();
    return assumeRoleWithWebIdentity({
      stsEndpoint: o.stsEndpoint,
      roleArn: env.AWS_ROLE_ARN,
      sessionName: env.AWS_ROLE_SESSION_NAME || o.sessionName,
      token,
    });
  }
  const ecs =
    env.AWS_CONTAINER_CREDENTIALS_FULL_URI ||
    (env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI ? `${ECS}${env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI}` : '');
  if (ecs) {
    const auth = env.AWS_CONTAINER_AUTHORIZATION_TOKEN;
    return fromJson(
      await cloudJson(
        'ECS container credentials',
        ecs,
        auth ? { headers: { authorization: auth }, timeoutMs: 5000 } : { timeoutMs: 5000 },
      ),
      'ECS container credentials',
    );
  }
  const imds = (env.AWS_EC2_METADATA_SERVICE_ENDPOINT || IMDS).replace(/\/+$/, '');
  const noCredentials = (cause?: unknown) =>
    new FerryError(
      CODES.VAULT_AUTH,
      'no AWS credentials: none in the environment and no instance metadata service; set spec.aws.secretRef or spec.aws.irsaServiceAccount',
      { cause },
    );
  const tokenRes = await cloudCall('IMDSv2 token', `${imds}/latest/api/token`, {
    method: 'PUT',
    headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '21600' },
    timeoutMs: 2000,
  }).catch((err: unknown) => {
    throw noCredentials(err);
  });
  const token = tokenRes.text.trim();
  if (tokenRes.status !== 200 || !token) throw noCredentials();
  const headers = { 'x-aws-ec2-metadata-token': token };
  const base = `${imds}/latest/meta-data/iam/security-credentials/`;
  const listing = await cloudCall('instance metadata', base, { headers, timeoutMs: 5000 });
  const role = listing.text.split('\n')[0]?.trim() ?? '';
  if (listing.status !== 200 || !role)
    throw new FerryError(CODES.VAULT_AUTH, 'the instance metadata service names no instance profile role');
  return fromJson(
    await cloudJson('instance metadata credentials', `${base}${encodeURIComponent(role)}`, {
      headers,
      timeoutMs: 5000,
    }),
    'instance metadata credentials',
  );
}
