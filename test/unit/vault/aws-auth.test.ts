// AWS IAM login data: SigV4 checked against AWS's published test vector, and the login fields as
// Vault's aws method decodes them (base64 of the URL, body and Go http.Header JSON).
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { isFerryError } from '../../../src/errors.ts';
import {
  type AwsCredentials,
  ambientAwsCredentials,
  amzDate,
  awsLoginData,
  sigV4Authorization,
  stsUrl,
} from '../../../src/vault/auth/aws.ts';

const EXAMPLE = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };

describe('SigV4', () => {
  it("matches AWS's get-vanilla test vector", () => {
    const auth = sigV4Authorization({
      method: 'GET',
      url: new URL('https://example.amazonaws.com/'),
      headers: { 'X-Amz-Date': '20150830T123600Z' },
      body: '',
      service: 'service',
      region: 'us-east-1',
      credentials: EXAMPLE,
      amzDate: '20150830T123600Z',
    });
    assert.equal(
      auth,
      'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31',
    );
  });
  it('formats x-amz-date from a clock', () => {
    assert.equal(amzDate(Date.UTC(2015, 7, 30, 12, 36, 0, 123)), '20150830T123600Z');
  });
});

describe('awsLoginData', () => {
  const decode = (s: string | undefined) => Buffer.from(s ?? '', 'base64').toString('utf8');
  it('signs sts:GetCallerIdentity for the global endpoint in us-east-1, with the server-id header and session token', () => {
    const data = awsLoginData(
      { ...EXAMPLE, sessionToken: 'session' },
      { region: 'us-east-1', headerValue: 'vault.example.com', now: Date.UTC(2026, 0, 2, 3, 4, 5) },
    );
    assert.equal(data.iam_http_request_method, 'POST');
    assert.equal(decode(data.iam_request_url), 'https://sts.amazonaws.com/');
    assert.equal(decode(data.iam_request_body), 'Action=GetCallerIdentity&Version=2011-06-15');
    const headers = JSON.parse(decode(data.iam_request_headers)) as Record<string, string[]>;
    assert.deepEqual(headers['Content-Type'], ['application/x-www-form-urlencoded; charset=utf-8']);
    assert.deepEqual(headers['X-Amz-Date'], ['20260102T030405Z']);
    assert.deepEqual(headers['X-Amz-Security-Token'], ['session']);
    assert.deepEqual(headers['X-Vault-Aws-Iam-Server-Id'], ['vault.example.com']);
    assert.match(
      headers.Authorization?.[0] ?? '',
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/20260102\/us-east-1\/sts\/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-vault-aws-iam-server-id, Signature=[0-9a-f]{64}$/,
    );
  });
  it('uses the regional endpoint elsewhere and leaves optional headers out', () => {
    assert.equal(stsUrl('eu-west-1'), 'https://sts.eu-west-1.amazonaws.com/');
    const data = awsLoginData(EXAMPLE, { region: 'eu-west-1', now: 0 });
    const headers = JSON.parse(decode(data.iam_request_headers)) as Record<string, string[]>;
    assert.deepEqual(Object.keys(headers).sort(), ['Authorization', 'Content-Type', 'X-Amz-Date']);
    assert.match(
      headers.Authorization?.[0] ?? '',
      /\/eu-west-1\/sts\/aws4_request, SignedHeaders=content-type;host;x-amz-date,/,
    );
  });
});

describe('ambientAwsCredentials (the default chain)', () => {
  let server: Server;
  let url: string;
  const seen: { method: string; path: string; headers: IncomingHttpHeaders; body: string }[] = [];
  const creds = { AccessKeyId: 'ASIAMETA', SecretAccessKey: 'meta-secret', Token: 'meta-token' };
  before(async () => {
    // STS (AssumeRoleWithWebIdentity), an ECS credentials endpoint and IMDSv2, on one loopback server.
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString();
      });
      req.on('end', () => {
        const path = req.url ?? '';
        seen.push({ method: req.method ?? '', path, headers: req.headers, body });
        if (path === '/sts/') {
          res.writeHead(200, { 'content-type': 'text/xml' });
          return res.end(
            '<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAWEB</AccessKeyId>' +
              '<SecretAccessKey>web-secret</SecretAccessKey><SessionToken>web-token</SessionToken></Credentials>' +
              '</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>',
          );
        }
        if (path === '/ecs' && req.headers.authorization === 'ecs-auth')
          return res.end(JSON.stringify(creds));
        if (path === '/latest/api/token' && req.method === 'PUT') return res.end('imds-token');
        if (req.headers['x-aws-ec2-metadata-token'] !== 'imds-token') {
          res.writeHead(401);
          return res.end();
        }
        if (path === '/latest/meta-data/iam/security-credentials/') return res.end('node-role\n');
        if (path === '/latest/meta-data/iam/security-credentials/node-role')
          return res.end(JSON.stringify(creds));
        res.writeHead(404);
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  const chain = (env: Record<string, string>): Promise<AwsCredentials> =>
    ambientAwsCredentials({
      env,
      stsEndpoint: `${url}/sts/`,
      sessionName: 'ferry',
      readFile: async (path) => {
        assert.equal(path, '/var/run/secrets/eks.amazonaws.com/serviceaccount/token');
        return 'web-identity-token\n';
      },
    });

  it('takes keys from the environment first', async () => {
    assert.deepEqual(
      await chain({ AWS_ACCESS_KEY_ID: 'AKIAENV', AWS_SECRET_ACCESS_KEY: 'env-secret', AWS_ROLE_ARN: 'x' }),
      {
        accessKeyId: 'AKIAENV',
        secretAccessKey: 'env-secret',
        sessionToken: undefined,
      },
    );
  });
  it("exchanges the pod's web identity token file for the role in AWS_ROLE_ARN", async () => {
    seen.length = 0;
    const c = await chain({
      AWS_ROLE_ARN: 'arn:aws:iam::123456789012:role/operator',
      AWS_WEB_IDENTITY_TOKEN_FILE: '/var/run/secrets/eks.amazonaws.com/serviceaccount/token',
    });
    assert.deepEqual(c, { accessKeyId: 'ASIAWEB', secretAccessKey: 'web-secret', sessionToken: 'web-token' });
    const form = new URLSearchParams(seen[0]?.body);
    assert.equal(form.get('WebIdentityToken'), 'web-identity-token');
    assert.equal(form.get('RoleArn'), 'arn:aws:iam::123456789012:role/operator');
    assert.equal(form.get('RoleSessionName'), 'ferry');
  });
  it('reads ECS container credentials', async () => {
    const c = await chain({
      AWS_CONTAINER_CREDENTIALS_FULL_URI: `${url}/ecs`,
      AWS_CONTAINER_AUTHORIZATION_TOKEN: 'ecs-auth',
    });
    assert.deepEqual(c, {
      accessKeyId: 'ASIAMETA',
      secretAccessKey: 'meta-secret',
      sessionToken: 'meta-token',
    });
  });
  it('falls back to the instance profile through IMDSv2', async () => {
    seen.length = 0;
    const c = await chain({ AWS_EC2_METADATA_SERVICE_ENDPOINT: url });
    assert.deepEqual(c, {
      accessKeyId: 'ASIAMETA',
      secretAccessKey: 'meta-secret',
      sessionToken: 'meta-token',
    });
    assert.equal(seen[0]?.headers['x-aws-ec2-metadata-token-ttl-seconds'], '21600');
  });
  it('says what to configure when nothing provides credentials', async () => {
    await assert.rejects(
      chain({ AWS_EC2_METADATA_SERVICE_ENDPOINT: 'http://127.0.0.1:1' }),
      (e) =>
        isFerryError(e) &&
        /no AWS credentials: .*set spec\.aws\.secretRef or spec\.aws\.irsaServiceAccount/.test(e.message),
    );
  });
});
