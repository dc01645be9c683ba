"""TOTP with a real authenticator implementation (pyotp) against a live tessera.

    python totp_flow.py --base http://127.0.0.1:8080 --username U --password P

Enrols the user in TOTP, reads the otpauth URI as an authenticator app would
(pyotp.parse_uri), confirms with pyotp's code, logs in (403 mfa_required),
finishes the login with the next step's code and checks the token's amr/aal
and X-User-Aal; then removes TOTP again with the password. Prints one line per
step; exits 1 on the first disagreement.
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

import pyotp


def call(base, method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request) as response:
            raw = response.read()
            return response.status, dict(response.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, dict(error.headers), json.loads(raw) if raw else None


def expect(what, status, want, body):
    if status != want:
        print(f"FAIL {what}: HTTP {status}, expected {want}: {body}")
        sys.exit(1)
    print(f"ok   {what}: HTTP {status}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    args = parser.parse_args()
    base, credentials = args.base, {"username": args.username, "password": args.password}

    status, _, body = call(base, "POST", "/auth/login", credentials)
    expect("login", status, 200, body)
    access = body["access_token"]

    status, _, body = call(base, "POST", "/auth/mfa/totp", {"password": args.password}, access)
    expect("start TOTP", status, 200, body)
    totp = pyotp.parse_uri(body["otpauth_uri"])
    if totp.secret != body["secret"] or totp.digits != 6 or totp.interval != 30:
        print(f"FAIL the otpauth URI disagrees with the secret or RFC 6238 defaults: {body}")
        sys.exit(1)
    print(f"ok   otpauth URI read by pyotp: issuer {totp.issuer!r}, account {totp.name!r}")

    now = time.time()
    status, _, body = call(base, "POST", "/auth/mfa/totp/confirm", {"code": totp.at(now)}, access)
    expect("confirm with pyotp's code", status, 200, body)
    if len(body["recovery_codes"]) != 10:
        print(f"FAIL expected 10 recovery codes: {body}")
        sys.exit(1)

    status, _, body = call(base, "POST", "/auth/login", credentials)
    expect("login asks for the second factor", status, 403, body)
    if body.get("code") != "mfa_required" or "totp" not in body.get("methods", []):
        print(f"FAIL expected mfa_required with methods: {body}")
        sys.exit(1)
    mfa_token = body["mfa_token"]

    # The confirmation spent this step's code: the next step's is accepted.
    code = totp.at(now + 30)
    status, _, body = call(base, "POST", "/auth/mfa/verify", {"mfa_token": mfa_token, "code": code})
    expect("verify with pyotp's next code", status, 200, body)
    access = body["access_token"]

    status, headers, body = call(base, "GET", "/auth/verify", token=access)
    expect("verify the aal2 token", status, 200, body)
    aal = {k.lower(): v for k, v in headers.items()}.get("x-user-aal")
    if body.get("amr") != ["pwd", "otp"] or body.get("aal") != "aal2" or aal != "aal2":
        print(f"FAIL expected amr [pwd, otp], aal2 and X-User-Aal aal2: {body}, header {aal!r}")
        sys.exit(1)
    print("ok   amr [pwd, otp], aal aal2, X-User-Aal aal2")

    status, _, body = call(base, "POST", "/auth/login", credentials)
    mfa_token = body["mfa_token"]
    status, _, body = call(base, "POST", "/auth/mfa/verify", {"mfa_token": mfa_token, "code": code})
    expect("the same code again is refused (no replay)", status, 401, body)

    status, _, body = call(base, "DELETE", "/auth/mfa/totp", {"password": args.password}, access)
    expect("remove TOTP with the password", status, 204, body)
    status, _, body = call(base, "POST", "/auth/login", credentials)
    expect("login is one step again", status, 200, body)


if __name__ == "__main__":
    main()
