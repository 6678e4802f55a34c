// Interop check: libraries nobody at medgate wrote, against a running medgate node.
//
//   jose (panva) — signs the installation's evidence and verifies medgate's access token
//                  against medgate's published JWKS (issuer, audience, typ, algorithm).
//   dpop (panva) — generates the installation key and the DPoP proofs the gateway must accept.
//   jose again    — makes the installation's key-agreement key and opens the secret medgate
//                  seals to it (JWE, ECDH-ES+A256KW / A256GCM).
//
// Inputs come from the environment (the Rust test sets them). Prints one JSON line per check
// and exits 1 if any failed.

import * as jose from 'jose';
import * as DPoP from 'dpop';

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const server = env('MEDGATE_SERVER');
const gateway = env('MEDGATE_GATEWAY');
const issuer = env('MEDGATE_ISSUER');
const appId = env('MEDGATE_APP_ID');
const appVersion = env('MEDGATE_APP_VERSION');
const measurement = env('MEDGATE_MEASUREMENT');
const secretName = env('MEDGATE_SECRET_NAME');
const secretValue = env('MEDGATE_SECRET_VALUE');

let failed = false;
function check(name, ok, detail) {
  if (!ok) failed = true;
  console.log(JSON.stringify({ check: name, ok: Boolean(ok), detail }));
}

// The installation key, made by the dpop library (WebCrypto, non-medgate code).
const keypair = await DPoP.generateKeyPair('ES256', { extractable: true });
const publicJwk = await jose.exportJWK(keypair.publicKey);
const jkt = await jose.calculateJwkThumbprint(publicJwk, 'sha256');
check('thumbprints agree across libraries', jkt === (await DPoP.calculateThumbprint(keypair.publicKey)), jkt);

// The key secrets are sealed to: another key, for key agreement only.
const encryption = await jose.generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256', extractable: true });
const { kty, crv, x, y } = await jose.exportJWK(encryption.publicKey);

// Challenge, then evidence signed by jose.
const challenge = await fetch(`${server}/v1/challenge`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ app_id: appId }),
});
const { challenge: value } = await challenge.json();
check('challenge issued', challenge.status === 201 && typeof value === 'string', challenge.status);

const claims = {
  challenge: value,
  app_id: appId,
  app_version: appVersion,
  platform: 'sdk',
  iat: Math.floor(Date.now() / 1000),
  evidence: { sdk: { binary_sha256: measurement } },
  signals: [],
  encryption_key: { kty, crv, x, y },
};
const evidence = await new jose.CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
  .setProtectedHeader({ alg: 'ES256', typ: 'medgate-evidence+jwt', jwk: publicJwk })
  .sign(keypair.privateKey);
const attest = await fetch(`${server}/v1/attest`, {
  method: 'POST',
  headers: { 'content-type': 'application/jose' },
  body: evidence,
});
const granted = await attest.json();
check('evidence signed by jose is accepted', attest.status === 200 && granted.token_type === 'DPoP', {
  status: attest.status,
  decision: granted.decision,
  scope: granted.scope,
  reasons: granted.reasons,
});
const token = granted.access_token;

// jose verifies the access token against medgate's JWKS.
const jwks = jose.createRemoteJWKSet(new URL(`${server}/.well-known/jwks.json`));
try {
  const { payload, protectedHeader } = await jose.jwtVerify(token, jwks, {
    issuer,
    audience: gateway,
    typ: 'at+jwt',
    algorithms: ['ES256'],
  });
  check('access token verifies with jose against the JWKS', true, protectedHeader);
  check('token is bound to the installation key (cnf.jkt)', payload.cnf?.jkt === jkt && payload.sub === jkt, payload.cnf);
  check('token carries the granted scope', payload.scope === granted.scope, payload.scope);
} catch (error) {
  check('access token verifies with jose against the JWKS', false, String(error));
}
// jose must refuse a tampered token, so the check above could have failed.
const [h, p, s] = token.split('.');
const tampered = `${h}.${p}.${s.startsWith('A') ? 'B' : 'A'}${s.slice(1)}`;
try {
  await jose.jwtVerify(tampered, jwks, { issuer, audience: gateway });
  check('jose refuses a tampered token', false, 'accepted');
} catch (error) {
  check('jose refuses a tampered token', error.code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED', error.code);
}

// Proofs from the dpop library pass the gateway.
const url = `${gateway}/api/v1/entries.json`;
const proof = await DPoP.generateProof(keypair, url, 'GET', undefined, token);
const headers = { authorization: `DPoP ${token}`, dpop: proof };
const first = await fetch(url, { headers });
check('gateway accepts a dpop-library proof', first.status === 200, first.status);
const withQuery = await fetch(`${url}?count=3`, {
  headers: { authorization: `DPoP ${token}`, dpop: await DPoP.generateProof(keypair, `${url}?count=3`, 'GET', undefined, token) },
});
check('gateway accepts a proof for a URL with a query', withQuery.status === 200, withQuery.status);
const replay = await fetch(url, { headers });
check(
  'gateway refuses the same proof twice',
  replay.status === 401 && (replay.headers.get('www-authenticate') ?? '').includes('invalid_dpop_proof'),
  replay.headers.get('www-authenticate'),
);
const otherKey = await DPoP.generateKeyPair('ES256');
const stolen = await fetch(url, {
  headers: { authorization: `DPoP ${token}`, dpop: await DPoP.generateProof(otherKey, url, 'GET', undefined, token) },
});
check('gateway refuses a proof from another key', stolen.status === 401, stolen.status);

// The secret, sealed by medgate to the key above, opened by jose.
const secretUrl = `${server}/v1/secrets/${secretName}`;
const secretHeaders = {
  authorization: `DPoP ${token}`,
  dpop: await DPoP.generateProof(keypair, secretUrl, 'GET', undefined, token),
};
const sealed = await fetch(secretUrl, { headers: secretHeaders });
const jwe = await sealed.text();
check('the control plane answers with a compact JWE', sealed.status === 200 && sealed.headers.get('content-type') === 'application/jose', sealed.status);
try {
  const { plaintext, protectedHeader } = await jose.compactDecrypt(jwe, encryption.privateKey, {
    keyManagementAlgorithms: ['ECDH-ES+A256KW'],
    contentEncryptionAlgorithms: ['A256GCM'],
  });
  check('jose opens the sealed secret with the installation key', new TextDecoder().decode(plaintext) === secretValue, protectedHeader.medgate_secret);
} catch (error) {
  check('jose opens the sealed secret with the installation key', false, String(error));
}
const strangerKey = await jose.generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256' });
try {
  await jose.compactDecrypt(jwe, strangerKey.privateKey);
  check('jose cannot open it with another key', false, 'opened');
} catch (error) {
  check('jose cannot open it with another key', error.code === 'ERR_JWE_DECRYPTION_FAILED', error.code);
}
const secretReplay = await fetch(secretUrl, { headers: secretHeaders });
check('the secret endpoint refuses the same proof twice', secretReplay.status === 401, secretReplay.status);

process.exit(failed ? 1 : 0);
