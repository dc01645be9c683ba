#!/usr/bin/env python3
"""Validate a tessera access token the way every resource server should.

The `TesseraValidator` class is the part to copy into a service; the command
line around it is what `.ci/interop.sh` runs:

    validate.py --base http://127.0.0.1:8080 --alg ES256 --token T --expect valid
    validate.py --base URL --alg HS256 --secret S --token T --expect invalid

Exit status: 0 when the outcome is the expected one (without `--expect`: when
the token is valid), 1 when it is not, 2 when no verdict could be reached (bad
arguments, the JWKS unreachable or not usable). A failure to fetch keys is
never reported as "correctly refused".

Rules applied (docs/INTEGRATION.md explains each):
- the algorithm is pinned (HS256 or ES256, from configuration, never from the
  token); `alg: none` and every other algorithm are refused;
- the key is picked by the token's `kid`: for HS256 the first 16 hex digits of
  SHA-256(secret), for ES256 the JWKS entry with that `kid`; a token without a
  `kid`, or with an unknown one, is refused;
- `exp`, `nbf`, `iat`, `iss`, `aud` and `sub` are required; `iss` and `aud`
  must equal tessera's `jwt.issuer` and `jwt.audience`; a small leeway
  (default 30 s, tessera's own) absorbs clock skew;
- the JWKS is cached for the `max-age` of its `Cache-Control` header and
  fetched again when a token names a `kid` it does not hold (at most once per
  cooldown, so random `kid`s cannot turn into a flood of fetches).

Needs PyJWT with its crypto extra: `pip install "PyJWT[crypto]"`.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import re
import sys
import urllib.request
from typing import Any
from urllib.error import URLError

import jwt
from jwt import PyJWKClient
from jwt.exceptions import (
    InvalidAlgorithmError,
    InvalidTokenError,
    PyJWKClientConnectionError,
    PyJWKClientError,
    PyJWKSetError,
)

#: Claims every tessera access token carries and every validator must demand.
REQUIRED_CLAIMS = ["exp", "nbf", "iat", "iss", "aud", "sub"]
#: Used when the JWKS response carries no usable `Cache-Control: max-age`.
DEFAULT_JWKS_MAX_AGE = 300
#: Least time between two fetches caused by an unknown `kid`.
UNKNOWN_KID_COOLDOWN = 30

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)


def hs256_kid(secret: bytes) -> str:
    """tessera's `kid` for an HS256 secret: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(secret).hexdigest()[:16]


def cache_max_age(cache_control: str | None) -> int | None:
    """Seconds a response may be cached per its Cache-Control header (None: unsaid)."""
    if not cache_control:
        return None
    if re.search(r"(?:^|,)\s*(no-store|no-cache)\s*(?:,|$)", cache_control, re.IGNORECASE):
        return 0
    match = _MAX_AGE.search(cache_control)
    return int(match.group(1)) if match else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Key material comes from the configured URL only, never from a redirect."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class TesseraJWKClient(PyJWKClient):
    """A `jwt.PyJWKClient` whose JWKS cache lives as long as the response's
    `Cache-Control: max-age` says (tessera sends `public, max-age=300`).

    PyJWKClient already refetches the set when a `kid` is missing from it,
    at most once per `cooldown_duration`; only the lifetime is added here.
    """

    def fetch_data(self) -> Any:
        request = urllib.request.Request(
            self.uri, headers={"Accept": "application/json", **self.headers}
        )
        opener = urllib.request.build_opener(_NoRedirect())
        try:
            with opener.open(request, timeout=self.timeout) as response:
                max_age = cache_max_age(response.headers.get("Cache-Control"))
                jwk_set = json.load(response)
        except (URLError, TimeoutError, http.client.HTTPException, ValueError) as error:
            raise PyJWKClientConnectionError(
                f"could not fetch the JWKS from {self.uri}: {error}"
            ) from error
        if not isinstance(jwk_set, dict):
            raise PyJWKClientError("the JWKS endpoint did not return a JSON object")
        if self.jwk_set_cache is not None:
            lifespan = DEFAULT_JWKS_MAX_AGE if max_age is None else max_age
            # PyJWT wants a positive lifespan; "do not cache" becomes one second.
            self.jwk_set_cache.lifespan = max(lifespan, 1)
            self.jwk_set_cache.put(jwk_set)
        return jwk_set


class KeyUnavailable(Exception):
    """The keys could not be obtained: no verdict on the token is possible."""


class TesseraValidator:
    """Verifies tessera access tokens statelessly (signature and claims)."""

    def __init__(
        self,
        *,
        algorithm: str,
        base_url: str | None = None,
        secrets: list[str] | None = None,
        issuer: str = "tessera",
        audience: str = "tessera",
        leeway: int = 30,
    ) -> None:
        if algorithm not in ("HS256", "ES256"):
            raise ValueError("algorithm must be HS256 or ES256 (what tessera is configured with)")
        self.algorithm = algorithm
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self._hmac_keys: dict[str, bytes] = {}
        self._jwks: TesseraJWKClient | None = None
        if algorithm == "HS256":
            # The current secret and any retired ones still inside a rotation.
            for secret in secrets or []:
                raw = secret.encode("utf-8")  # tessera uses the raw UTF-8 bytes
                if len(raw) < 32:
                    raise ValueError("an HS256 secret has at least 32 bytes")
                self._hmac_keys[hs256_kid(raw)] = raw
            if not self._hmac_keys:
                raise ValueError("HS256 needs tessera's shared secret (jwt.secret)")
        else:
            if not base_url:
                raise ValueError("ES256 needs tessera's base URL, for its JWKS")
            self._jwks = TesseraJWKClient(
                base_url.rstrip("/") + "/.well-known/jwks.json",
                cache_jwk_set=True,
                lifespan=DEFAULT_JWKS_MAX_AGE,
                cooldown_duration=UNKNOWN_KID_COOLDOWN,
                timeout=5,
            )

    def _key_for(self, token: str) -> Any:
        header = jwt.get_unverified_header(token)  # DecodeError when malformed
        if header.get("alg") != self.algorithm:
            # Checked again by jwt.decode; refusing here saves a JWKS fetch.
            raise InvalidAlgorithmError(f"alg {header.get('alg')!r} is not {self.algorithm}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidTokenError("the token has no kid")
        if self._jwks is None:
            key = self._hmac_keys.get(kid)
            if key is None:
                raise InvalidTokenError(f"unknown kid {kid!r}")
            return key
        try:
            return self._jwks.get_signing_key(kid).key
        except (PyJWKClientConnectionError, PyJWKSetError) as error:
            raise KeyUnavailable(str(error)) from error
        except PyJWKClientError as error:  # the kid is not in the (refetched) JWKS
            raise InvalidTokenError(f"unknown kid {kid!r}") from error

    def validate(self, token: str) -> dict[str, Any]:
        """The verified claims; raises `jwt.InvalidTokenError` for a bad token
        and `KeyUnavailable` when the keys could not be obtained."""
        key = self._key_for(token)
        claims = jwt.decode(
            token,
            key,
            algorithms=[self.algorithm],
            audience=self.audience,
            issuer=self.issuer,
            leeway=self.leeway,
            options={
                "require": REQUIRED_CLAIMS,
                "verify_signature": True,
                "verify_exp": True,
                "verify_nbf": True,
                "verify_iat": True,
                "verify_aud": True,
                "verify_iss": True,
            },
        )
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise InvalidTokenError("sub is not a non-empty string")
        return claims


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=os.environ.get("TESSERA_URL", "http://127.0.0.1:8080"),
                        help="tessera's base URL (for the JWKS); default $TESSERA_URL")
    parser.add_argument("--alg", required=True, choices=["HS256", "ES256"],
                        help="tessera's jwt.algorithm")
    parser.add_argument("--secret", action="append",
                        help="HS256 secret (repeat for retired ones); default $TESSERA_JWT_SECRET")
    parser.add_argument("--token", required=True, help="the access token ('-' reads stdin)")
    parser.add_argument("--expect", choices=["valid", "invalid"],
                        help="exit 0 only if the token turns out so")
    parser.add_argument("--issuer", default="tessera", help="tessera's jwt.issuer")
    parser.add_argument("--audience", default="tessera", help="tessera's jwt.audience")
    parser.add_argument("--leeway", type=int, default=30, help="clock skew tolerated, seconds")
    args = parser.parse_args(argv)

    token = sys.stdin.read().strip() if args.token == "-" else args.token
    secrets = args.secret or (
        [os.environ["TESSERA_JWT_SECRET"]] if os.environ.get("TESSERA_JWT_SECRET") else []
    )
    try:
        validator = TesseraValidator(
            algorithm=args.alg,
            base_url=args.base,
            secrets=secrets,
            issuer=args.issuer,
            audience=args.audience,
            leeway=args.leeway,
        )
        claims = validator.validate(token)
        outcome = "valid"
        print(f"python: valid sub={claims['sub']} role={claims.get('role')}")
    except InvalidTokenError as error:
        outcome = "invalid"
        print(f"python: invalid ({type(error).__name__}: {error})")
    except (KeyUnavailable, ValueError) as error:
        print(f"python: no verdict ({type(error).__name__}: {error})", file=sys.stderr)
        return 2
    expected = args.expect or "valid"
    return 0 if outcome == expected else 1


if __name__ == "__main__":
    sys.exit(main())
