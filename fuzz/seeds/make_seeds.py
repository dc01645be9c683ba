#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/seeds/<target>/ (run from anywhere).

The tokens are signed with the secrets of fuzz/src/lib.rs and expire in
2100, so the seeds keep reaching the claims checks. Re-run after changing
those constants; the output is deterministic.
"""
import base64
import hashlib
import hmac
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
CURRENT = b"fuzz-current-secret-0123456789abcdef"
PREVIOUS = b"fuzz-previous-secret-0123456789abcdef"
FOREIGN = b"fuzz-foreign-secret-0123456789abcdef"
ISSUER, AUDIENCE = "tessera", "tessera-api"
JTI = "01890a5d-ac96-774b-bcce-b302099a8057"
FAR = 4102444800  # 2100-01-01
IAT = 1700000000


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def kid(secret: bytes) -> str:
    return hashlib.sha256(secret).hexdigest()[:16]


def token(claims, secret=CURRENT, header=None) -> str:
    header = header if header is not None else {"typ": "JWT", "alg": "HS256", "kid": kid(secret)}
    message = b64(json.dumps(header, separators=(",", ":")).encode()) + "." + b64(
        json.dumps(claims, separators=(",", ":")).encode()
    )
    sig = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return message + "." + b64(sig)


def claims(**changes):
    base = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "exp": FAR, "iat": IAT,
        "nbf": IAT, "jti": JTI, "role": "user", "username": "alice",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def write(target: str, name: str, data) -> None:
    folder = HERE / target
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def main() -> None:
    tokens = {
        "valid_current": token(claims()),
        "valid_previous": token(claims(role="admin"), PREVIOUS),
        "foreign_key": token(claims(), FOREIGN),
        "kid_mismatch": token(claims(), PREVIOUS, {"alg": "HS256", "kid": kid(CURRENT)}),
        "no_kid": token(claims(), CURRENT, {"alg": "HS256"}),
        "alg_none": token(claims(), CURRENT, {"alg": "none", "kid": kid(CURRENT)}).rsplit(".", 1)[0] + ".",
        "alg_hs512": token(claims(), CURRENT, {"alg": "HS512", "kid": kid(CURRENT)}),
        "expired": token(claims(exp=IAT + 900)),
        "not_yet": token(claims(nbf=FAR - 10)),
        "wrong_aud": token(claims(aud=ISSUER)),
        "aud_array": token(claims(aud=[AUDIENCE])),
        "missing_sub": token(claims(sub=None)),
        "exp_float": token(claims(exp=4102444800.5)),
        "exp_huge": token(claims(exp=18446744073709551615)),
        "bad_role": token(claims(role="root")),
        "garbage": "not.a.token",
    }
    for name, text in tokens.items():
        write("token_verify", name, text)

    digits = "98765432109876543210"
    bodies = {
        "login.json": '{"username":"alice","password":"correct horse battery"}',
        "login_unknown.json": '{"username":"alice","password":"x","admin":true}',
        "login_missing.json": '{"username":"alice"}',
        "login_number.json": '{"username":"alice","password":%s}' % digits,
        "login_array.json": '["alice","secret"]',
        "register.json": '{"username":"bob","email":"bob@example.com","password":"hunter2hunter2"}',
        "update.json": '{"email":null,"role":"admin"}',
        "change_password.json": '{"current_password":"old password","new_password":"new password"}',
        "paging.json": '{"limit":%s,"offset":-1,"active":"yes"}' % digits,
        "nested.json": '{"username":{"a":[1,2,{"b":null}]},"password":"\\ud800"}',
        "truncated.json": '{"username":"al',
        "trailing.json": '{"username":"a","password":"b"} {}',
        "digits": digits,
        "form_login": "username=alice&password=correct+horse%20battery",
        "form_introspect": "token=eyJhbGciOiJIUzI1NiJ9.e30.sig&token_type_hint=access_token",
        "form_paging": "limit=%s&offset=x&active=maybe" % digits,
        "form_duplicate": "username=a&username=b&password=c",
    }
    for name, text in bodies.items():
        write("body_parsers", name, text)

    for name, text in {
        "username": "alice_01",
        "unicode": "Jos\u00e9.b+c-d_e@f",
        "email": "first.last+tag@sub.example.org",
        "password": "\u00e9" * 8,
        "long": "a" * 151,
    }.items():
        write("domain_parsers", name, text)


if __name__ == "__main__":
    main()
