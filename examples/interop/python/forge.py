#!/usr/bin/env python3
"""Make the test tokens for .ci/interop.sh from a real tessera access token.

Prints one line per case, tab-separated: `case<TAB>expect<TAB>token`, where
expect says what a correct validator answers (`valid` or `invalid`).

Some tokens are signed with the real key (the HS256 secret, or the ES256
private key the script generated), so that each one is refused for exactly
one reason (expired, wrong audience...); a control token re-signed with the
real key and fresh, correct claims shows that these tokens are otherwise
well-made. The others are what an attacker can make without the key.

Also `forge.py kid --alg HS256 --secret S` / `--alg ES256 --public-key P`
prints the `kid` a validator computes for that key (tessera must agree).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: dict) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hs256_kid(secret: bytes) -> str:
    return hashlib.sha256(secret).hexdigest()[:16]


def ec_thumbprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 thumbprint of a P-256 public key, tessera's ES256 `kid`."""
    numbers = public_key.public_numbers()
    x = b64url(numbers.x.to_bytes(32, "big"))
    y = b64url(numbers.y.to_bytes(32, "big"))
    canonical = json.dumps({"crv": "P-256", "kty": "EC", "x": x, "y": y}, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode()).digest())


def sign_hmac(header: dict, claims: dict, secret: bytes, digest=hashlib.sha256) -> str:
    """A JWS made by hand, so that any header (even a misleading one) can be used."""
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def cases(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    real = args.token
    header = jwt.get_unverified_header(real)
    claims = jwt.decode(real, options={"verify_signature": False})
    kid = header["kid"]
    now = int(time.time())
    fresh = {**claims, "iat": now, "nbf": now, "exp": now + 600}

    if args.alg == "HS256":
        secret = args.secret.encode()

        def sign_real(c: dict, h: dict | None = None) -> str:
            return sign_hmac(h or {"alg": "HS256", "typ": "JWT", "kid": kid}, c, secret)

        other = b"an-attackers-own-secret-that-is-long-enough!"
        other_kid = hs256_kid(other)

        def sign_other(c: dict, k: str) -> str:
            return sign_hmac({"alg": "HS256", "typ": "JWT", "kid": k}, c, other)

        confusion = (
            "hs512-with-the-real-secret",
            "invalid",
            sign_hmac({"alg": "HS512", "typ": "JWT", "kid": kid}, fresh, secret, hashlib.sha512),
        )
    else:
        with open(args.private_key, "rb") as pem:
            private = serialization.load_pem_private_key(pem.read(), password=None)
        with open(args.public_key, "rb") as pem:
            public_pem = pem.read()

        def sign_real(c: dict, h: dict | None = None) -> str:
            return jwt.encode(c, private, algorithm="ES256", headers=h or {"kid": kid})

        other = ec.generate_private_key(ec.SECP256R1())
        other_kid = ec_thumbprint(other.public_key())

        def sign_other(c: dict, k: str) -> str:
            return jwt.encode(c, other, algorithm="ES256", headers={"kid": k})

        # Algorithm confusion: HMAC keyed with the public key, which anyone has.
        confusion = (
            "hs256-keyed-with-the-public-key",
            "invalid",
            sign_hmac({"alg": "HS256", "typ": "JWT", "kid": kid}, fresh, public_pem),
        )

    h_part, p_part, s_part = real.split(".")
    tampered_claims = json.loads(unb64url(p_part))
    tampered_claims["role"] = "admin" if tampered_claims.get("role") != "admin" else "user"
    tampered = f"{h_part}.{b64url_json(tampered_claims)}.{s_part}"

    alg_none = f"{b64url_json({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{b64url_json(fresh)}."

    missing_exp = {k: v for k, v in fresh.items() if k != "exp"}
    missing_sub = {k: v for k, v in fresh.items() if k != "sub"}
    no_kid_header = {"alg": args.alg, "typ": "JWT"}

    return [
        ("resigned-control", "valid", sign_real(fresh)),
        ("expired-5s-ago-within-leeway", "valid",
         sign_real({**fresh, "iat": now - 905, "nbf": now - 905, "exp": now - 5})),
        ("tampered-payload-role", "invalid", tampered),
        ("other-key-same-kid", "invalid", sign_other(fresh, kid)),
        ("other-key-own-kid", "invalid", sign_other(fresh, other_kid)),
        ("other-key-expired-wrong-aud", "invalid",
         sign_other({**fresh, "aud": "another-service", "exp": now - 3600}, kid)),
        ("alg-none", "invalid", alg_none),
        confusion,
        ("real-key-expired", "invalid",
         sign_real({**fresh, "iat": now - 1000, "nbf": now - 1000, "exp": now - 100})),
        ("real-key-future-nbf", "invalid", sign_real({**fresh, "nbf": now + 300})),
        ("real-key-wrong-aud", "invalid", sign_real({**fresh, "aud": "another-service"})),
        ("real-key-wrong-iss", "invalid", sign_real({**fresh, "iss": "someone-else"})),
        ("real-key-no-exp", "invalid", sign_real(missing_exp)),
        ("real-key-no-sub", "invalid", sign_real(missing_sub)),
        ("real-key-no-kid", "invalid", sign_real(fresh, no_kid_header)),
        ("garbage", "invalid", "not.a.jwt"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["tokens", "kid"])
    parser.add_argument("--alg", required=True, choices=["HS256", "ES256"])
    parser.add_argument("--token", help="a real access token from tessera (tokens)")
    parser.add_argument("--secret", help="the HS256 secret")
    parser.add_argument("--private-key", help="the ES256 private key PEM (tokens)")
    parser.add_argument("--public-key", help="the ES256 public key PEM")
    args = parser.parse_args()

    if args.command == "kid":
        if args.alg == "HS256":
            print(hs256_kid(args.secret.encode()))
        else:
            with open(args.public_key, "rb") as pem:
                print(ec_thumbprint(serialization.load_pem_public_key(pem.read())))
        return 0
    for name, expect, token in cases(args):
        print(f"{name}\t{expect}\t{token}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
