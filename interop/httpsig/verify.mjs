// RFC 9421 interop: npm http-message-signatures (dhensby), which nobody at medgate wrote,
// verifies a signature medgate's SDK made. Reads {method, url, headers, jwk} as JSON on stdin;
// prints {"verified": true|false, "tampered_verified": …} (the same message with its
// Content-Digest changed must not verify: the control that the check can fail).

import { createPublicKey } from 'node:crypto';
import { httpbis, createVerifier } from 'http-message-signatures';

const input = JSON.parse(await new Promise((resolve) => {
  let text = '';
  process.stdin.on('data', (chunk) => { text += chunk; });
  process.stdin.on('end', () => resolve(text));
}));
const key = createPublicKey({ key: input.jwk, format: 'jwk' });

async function verify(headers) {
  try {
    return await httpbis.verifyMessage({
      async keyLookup(params) {
        if (params.keyid !== input.keyid) return null;
        return { id: input.keyid, algs: ['ecdsa-p256-sha256'], verify: createVerifier(key, 'ecdsa-p256-sha256') };
      },
      requiredFields: ['@method', '@target-uri', 'content-digest', 'authorization'],
      requiredParams: ['created', 'nonce', 'keyid', 'alg'],
    }, { method: input.method, url: input.url, headers });
  } catch (error) {
    return `error: ${error.message}`;
  }
}

const verified = await verify(input.headers);
const tampered = await verify({ ...input.headers, 'content-digest': 'sha-256=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:' });
console.log(JSON.stringify({ verified, tampered_verified: tampered }));
