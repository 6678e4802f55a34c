// SMART Backend Services interop with panva's openid-client (v6, on oauth4webapi), a client
// nobody at medgate wrote: discovery, client credentials grant with private_key_jwt (RFC 7523),
// optionally sender-constrained with DPoP (RFC 9449), then a protected resource request.
//
//   node openid_client.mjs keygen --alg ES384|ES256|RS384 --out-private P.json --out-jwks J.json
//       A fresh key pair (jose / WebCrypto): P.json is the private JWK with kid (RFC 7638
//       thumbprint), alg and use "sig"; J.json is {"keys": [public JWK]}. Prints {kid, alg, jwks}.
//
//   node openid_client.mjs --issuer ISSUER_URL --client-id ID --jwk PRIVATE_JWK.json --scope S
//                          [--get GATEWAY_URL] [--dpop] [--discovery-url URL]
//                          [--aud issuer|token-endpoint|ANY_STRING] [--expect-error]
//       discovery(new URL(issuer), id, undefined, PrivateKeyJwt({key, kid}),
//       {algorithm: 'oauth2', execute: [allowInsecureRequests]}) — RFC 8414: the metadata is
//       fetched from {origin}/.well-known/oauth-authorization-server{issuer path} and its
//       "issuer" must equal ISSUER_URL. --discovery-url fetches that URL as is instead (e.g.
//       {issuer}/.well-known/smart-configuration; then no issuer comparison is made).
//       clientCredentialsGrant(config, {scope}, {DPoP}) with DPoP = getDPoPHandle(config,
//       randomDPoPKeyPair('ES256')) when --dpop, then fetchProtectedResource GET on
//       GATEWAY_URL with the same handle. The assertion is the library's own: aud = the issuer
//       identifier; --aud token-endpoint (or a literal string) replaces it via modifyAssertion.
//       Prints {token_type, scope, expires_in, token_status, token_body, token_requests,
//       get_status, get_body, get_www_authenticate, get_requests}. token_type is as the library
//       hands it back (lowercased); token_body is the raw JSON the server sent.
//       On an OAuth error from the token endpoint prints {error, error_description,
//       token_status, token_body, token_requests} and exits 2 (0 with --expect-error; a
//       success with --expect-error exits 3). Other exceptions: message on stderr, exit 1.

import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import * as jose from 'jose';
import * as client from 'openid-client';

const argv = process.argv.slice(2);
const mode = argv[0] === 'keygen' ? argv.shift() : 'fetch';
const { values: opt } = parseArgs({
  args: argv,
  options: {
    alg: { type: 'string' },
    'out-private': { type: 'string' },
    'out-jwks': { type: 'string' },
    issuer: { type: 'string' },
    'client-id': { type: 'string' },
    jwk: { type: 'string' },
    scope: { type: 'string' },
    get: { type: 'string' },
    dpop: { type: 'boolean', default: false },
    'discovery-url': { type: 'string' },
    aud: { type: 'string' },
    'expect-error': { type: 'boolean', default: false },
  },
});

function need(name) {
  if (!opt[name]) throw new Error(`--${name} is required`);
  return opt[name];
}

async function keygen() {
  const alg = need('alg');
  if (!['ES384', 'ES256', 'RS384'].includes(alg)) throw new Error(`unsupported --alg ${alg}`);
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  const pub = await jose.exportJWK(publicKey);
  const kid = await jose.calculateJwkThumbprint(pub);
  const priv = { ...(await jose.exportJWK(privateKey)), kid, alg, use: 'sig' };
  const jwks = { keys: [{ ...pub, kid, alg, use: 'sig' }] };
  await writeFile(need('out-private'), JSON.stringify(priv));
  await writeFile(need('out-jwks'), JSON.stringify(jwks));
  return [{ kid, alg, jwks }, 0];
}

// Sees every HTTP exchange the library makes, to report raw bodies and retry counts.
function recordingFetch(log) {
  return async (url, init) => {
    const response = await fetch(url, init);
    const text = await response.clone().text();
    let body = text;
    try {
      body = JSON.parse(text);
    } catch {}
    log.push({ url, method: init?.method ?? 'GET', status: response.status, body });
    return response;
  };
}

function challengeError(err) {
  for (const c of err.cause ?? []) if (c.parameters?.error) return c.parameters;
  return {};
}

async function fetchMode() {
  const jwk = JSON.parse(await readFile(need('jwk'), 'utf8'));
  if (!jwk.alg || !jwk.kid) throw new Error('the private JWK needs "alg" and "kid"');
  const key = await jose.importJWK(jwk, jwk.alg);
  const issuer = need('issuer');
  const log = [];
  const options = { algorithm: 'oauth2', execute: [client.allowInsecureRequests] };
  options[client.customFetch] = recordingFetch(log);
  let auth;
  let config;
  const authOptions = {};
  if (opt.aud) {
    authOptions[client.modifyAssertion] = (_header, payload) => {
      if (opt.aud === 'issuer') payload.aud = config.serverMetadata().issuer;
      else if (opt.aud === 'token-endpoint') payload.aud = config.serverMetadata().token_endpoint;
      else payload.aud = opt.aud;
    };
  }
  auth = client.PrivateKeyJwt({ key, kid: jwk.kid }, authOptions);
  const where = opt['discovery-url'] ? new URL(opt['discovery-url']) : new URL(issuer);
  config = await client.discovery(where, need('client-id'), undefined, auth, options);
  if (opt['discovery-url'] && new URL(config.serverMetadata().issuer).href !== new URL(issuer).href) {
    throw new Error(`discovered issuer ${config.serverMetadata().issuer} is not ${issuer}`);
  }
  const tokenEndpoint = config.serverMetadata().token_endpoint;
  const tokenLog = () => log.filter((e) => e.url === tokenEndpoint);
  const dpop = opt.dpop
    ? client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'))
    : undefined;
  let tokens;
  try {
    tokens = await client.clientCredentialsGrant(
      config,
      opt.scope === undefined ? {} : { scope: opt.scope },
      dpop ? { DPoP: dpop } : undefined,
    );
  } catch (err) {
    let error;
    let description;
    if (err instanceof client.ResponseBodyError) {
      error = err.error;
      description = err.error_description;
    } else if (err instanceof client.WWWAuthenticateChallengeError) {
      const p = challengeError(err);
      error = p.error ?? tokenLog().at(-1)?.body?.error;
      description = p.error_description ?? tokenLog().at(-1)?.body?.error_description;
    } else {
      throw err;
    }
    const last = tokenLog().at(-1);
    return [
      {
        error,
        error_description: description ?? null,
        token_status: last?.status ?? null,
        token_body: last?.body ?? null,
        token_requests: tokenLog().length,
      },
      opt['expect-error'] ? 0 : 2,
    ];
  }
  const last = tokenLog().at(-1);
  const out = {
    token_type: tokens.token_type,
    scope: tokens.scope ?? null,
    expires_in: tokens.expires_in ?? null,
    token_status: last?.status ?? null,
    token_body: last?.body ?? null,
    token_requests: tokenLog().length,
  };
  if (opt['expect-error']) return [{ ...out, error: null }, 3];
  if (opt.get) {
    const url = new URL(opt.get);
    let response;
    try {
      response = await client.fetchProtectedResource(
        config,
        tokens.access_token,
        url,
        'GET',
        undefined,
        undefined,
        dpop ? { DPoP: dpop } : undefined,
      );
    } catch (err) {
      // A response with WWW-Authenticate is thrown, not returned.
      if (!(err instanceof client.WWWAuthenticateChallengeError)) throw err;
      response = err.response;
    }
    const gets = log.filter((e) => e.url === url.href);
    out.get_status = response.status;
    out.get_body = gets.at(-1)?.body ?? null;
    out.get_www_authenticate = response.headers.get('www-authenticate');
    out.get_requests = gets.length;
  }
  return [out, 0];
}

try {
  const [out, code] = mode === 'keygen' ? await keygen() : await fetchMode();
  console.log(JSON.stringify(out));
  process.exitCode = code;
} catch (err) {
  const cause = err?.cause && !(err.cause instanceof Response) ? `; cause: ${err.cause?.message ?? JSON.stringify(err.cause)}` : '';
  console.error(`${err?.name ?? 'Error'}: ${err?.message ?? err}${err?.code ? ` [${err.code}]` : ''}${cause}`);
  process.exitCode = 1;
}
