#!/usr/bin/env node
// Validate a tessera access token the way every resource server should, with
// `jose` (createRemoteJWKSet + jwtVerify). `tesseraVerifier()` is the part to
// copy into a service; the command line around it is what .ci/interop.sh runs:
//
//   node validate.mjs --base http://127.0.0.1:8080 --alg ES256 --token T --expect valid
//   node validate.mjs --base URL --alg HS256 --secret S --token T --expect invalid
//
// Exit status: 0 when the outcome is the expected one (without --expect: when
// the token is valid), 1 when it is not, 2 when no verdict could be reached
// (bad arguments, the JWKS unreachable or unusable). A failure to fetch keys
// is never reported as "correctly refused".
//
// Rules applied (docs/INTEGRATION.md explains each): the algorithm is pinned;
// the key is picked by `kid` (HS256: first 16 hex digits of SHA-256(secret);
// ES256: the JWKS entry with that kid); exp, nbf, iat, iss, aud and sub are
// required, iss and aud must be tessera's jwt.issuer and jwt.audience; 30 s of
// leeway; the JWKS is cached for its Cache-Control max-age and fetched again
// for an unknown kid (at most once per 30 s cooldown).

import { createHash, webcrypto } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

// jose uses the Web Crypto API; Node 18 has it only under node:crypto.
if (!globalThis.crypto) globalThis.crypto = webcrypto;
const { createRemoteJWKSet, customFetch, errors, jwtVerify } = await import('jose');

export const REQUIRED_CLAIMS = ['exp', 'nbf', 'iat', 'iss', 'aud', 'sub'];
const DEFAULT_JWKS_MAX_AGE_MS = 300_000;
const UNKNOWN_KID_COOLDOWN_MS = 30_000;

/** tessera's kid for an HS256 secret: the first 16 hex digits of its SHA-256. */
export function hs256Kid(secret) {
  return createHash('sha256').update(secret).digest('hex').slice(0, 16);
}

/** Milliseconds a response may be cached per its Cache-Control (undefined: unsaid). */
export function cacheMaxAgeMs(cacheControl) {
  if (!cacheControl) return undefined;
  if (/(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|$)/i.test(cacheControl)) return 0;
  const match = /(?:^|,)\s*max-age\s*=\s*"?(\d+)"?\s*(?:,|$)/i.exec(cacheControl);
  return match ? Number(match[1]) * 1000 : undefined;
}

/** The keys could not be obtained: no verdict on the token is possible. */
export class KeyUnavailable extends Error {}

/**
 * A key resolver for tessera's JWKS that honours its Cache-Control max-age
 * (jose's own cacheMaxAge is a fixed number, 10 minutes by default, longer
 * than tessera's 300 s). jose already refetches on an unknown kid, at most
 * once per cooldownDuration.
 */
export function tesseraJwks(baseUrl) {
  let maxAgeMs = DEFAULT_JWKS_MAX_AGE_MS;
  let fetchedAt = 0;
  const keys = createRemoteJWKSet(new URL('/.well-known/jwks.json', baseUrl), {
    cacheMaxAge: Infinity, // expired below, from Cache-Control
    cooldownDuration: UNKNOWN_KID_COOLDOWN_MS,
    timeoutDuration: 5_000,
    [customFetch]: async (url, options) => {
      const response = await fetch(url, options);
      if (response.status === 200) {
        maxAgeMs = cacheMaxAgeMs(response.headers.get('cache-control')) ?? DEFAULT_JWKS_MAX_AGE_MS;
        fetchedAt = Date.now();
      }
      return response;
    },
  });
  return async (protectedHeader, token) => {
    try {
      if (fetchedAt && Date.now() >= fetchedAt + maxAgeMs) await keys.reload();
      return await keys(protectedHeader, token);
    } catch (error) {
      if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) {
        throw error; // a verdict on the token: its kid is not tessera's
      }
      throw new KeyUnavailable(`JWKS: ${error.message}`, { cause: error });
    }
  };
}

/**
 * Returns `verify(token) -> claims`, which throws a jose error for a bad token
 * and KeyUnavailable when the keys could not be obtained.
 */
export function tesseraVerifier({
  algorithm,
  baseUrl,
  secrets = [],
  issuer = 'tessera',
  audience = 'tessera',
  leewaySecs = 30,
}) {
  let getKey;
  if (algorithm === 'HS256') {
    // The current secret and any retired ones still inside a rotation, by kid.
    const byKid = new Map();
    for (const secret of secrets) {
      const raw = new TextEncoder().encode(secret); // tessera uses the raw UTF-8 bytes
      if (raw.length < 32) throw new Error('an HS256 secret has at least 32 bytes');
      byKid.set(hs256Kid(raw), raw);
    }
    if (byKid.size === 0) throw new Error("HS256 needs tessera's shared secret (jwt.secret)");
    getKey = async (header) => {
      const key = typeof header.kid === 'string' ? byKid.get(header.kid) : undefined;
      if (!key) throw new errors.JWKSNoMatchingKey(`unknown kid ${JSON.stringify(header.kid)}`);
      return key;
    };
  } else if (algorithm === 'ES256') {
    if (!baseUrl) throw new Error("ES256 needs tessera's base URL, for its JWKS");
    const jwks = tesseraJwks(baseUrl);
    getKey = async (header, token) => {
      if (typeof header.kid !== 'string' || header.kid === '') {
        throw new errors.JWKSNoMatchingKey('the token has no kid');
      }
      return jwks(header, token);
    };
  } else {
    throw new Error('algorithm must be HS256 or ES256 (what tessera is configured with)');
  }
  return async (token) => {
    const { payload } = await jwtVerify(token, getKey, {
      algorithms: [algorithm], // pinned: never taken from the token
      issuer,
      audience,
      clockTolerance: leewaySecs,
      requiredClaims: REQUIRED_CLAIMS,
    });
    if (typeof payload.sub !== 'string' || payload.sub === '') {
      throw new errors.JWTClaimValidationFailed('sub is not a non-empty string', payload, 'sub');
    }
    return payload;
  };
}

async function main() {
  const { values } = parseArgs({
    options: {
      base: { type: 'string', default: process.env.TESSERA_URL ?? 'http://127.0.0.1:8080' },
      alg: { type: 'string' },
      secret: { type: 'string', multiple: true },
      token: { type: 'string' },
      expect: { type: 'string' },
      issuer: { type: 'string', default: 'tessera' },
      audience: { type: 'string', default: 'tessera' },
      leeway: { type: 'string', default: '30' },
    },
  });
  if (!['HS256', 'ES256'].includes(values.alg) || !values.token ||
      (values.expect && !['valid', 'invalid'].includes(values.expect))) {
    console.error('usage: validate.mjs --base URL --alg HS256|ES256 [--secret S] --token T [--expect valid|invalid]');
    return 2;
  }
  const token = values.token === '-'
    ? (await new Response(process.stdin).text()).trim()
    : values.token;
  const secrets = values.secret ?? (process.env.TESSERA_JWT_SECRET ? [process.env.TESSERA_JWT_SECRET] : []);
  let outcome;
  try {
    const verify = tesseraVerifier({
      algorithm: values.alg,
      baseUrl: values.base,
      secrets,
      issuer: values.issuer,
      audience: values.audience,
      leewaySecs: Number(values.leeway),
    });
    const claims = await verify(token);
    outcome = 'valid';
    console.log(`node: valid sub=${claims.sub} role=${claims.role}`);
  } catch (error) {
    if (error instanceof errors.JOSEError) {
      outcome = 'invalid';
      console.log(`node: invalid (${error.code}: ${error.message})`);
    } else {
      console.error(`node: no verdict (${error.name}: ${error.message})`);
      return 2;
    }
  }
  return outcome === (values.expect ?? 'valid') ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main();
}
