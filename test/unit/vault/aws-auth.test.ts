// AWS IAM login data: SigV4 checked against AWS's published test vector, and the login fields as
// Vault's aws method decodes them (base64 of the URL, body and Go http.Header JSON).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { amzDate, awsLoginData, sigV4Authorization, stsUrl } from '../../../src/vault/auth/aws.ts';

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
