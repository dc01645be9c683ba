"""A service talking to tessera through a real OAuth 2.0 client library.

    python oauth_client.py --issuer URL --client-id ID --client-secret SECRET \
        --user-token ACCESS --user-refresh REFRESH

What another service does with tessera, step by step, with Authlib's OAuth
2.0 client (``authlib.integrations.requests_client.OAuth2Session``):

1. discovers tessera from ``URL/.well-known/oauth-authorization-server``
   (RFC 8414): the metadata's ``issuer`` must be the URL it was asked under;
2. gets a client-credentials token at the discovered ``token_endpoint``
   (``client_secret_basic``), and checks it with PyJWT against the JWKS (or
   just reads it, under HS256, whose key is not published);
3. introspects a user's access token and refresh token (RFC 7662) with its
   client credentials: both active;
4. revokes the user's refresh token (RFC 7009), then introspects again:
   both inactive (the session ended, so its access token went with it);
5. checks that a wrong secret is refused with ``invalid_client``.

Exits 0 when every step agrees, 1 with a message otherwise.
"""

import argparse
import sys

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError


def fail(message):
    print(f"oauth: FAIL {message}", file=sys.stderr)
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--user-token", required=True)
    parser.add_argument("--user-refresh", required=True)
    args = parser.parse_args()

    issuer = args.issuer.rstrip("/")
    response = requests.get(f"{issuer}/.well-known/oauth-authorization-server", timeout=10)
    response.raise_for_status()
    metadata = response.json()
    # RFC 8414 §3.3: the issuer must be the one the client asked for.
    if metadata.get("issuer") != issuer:
        fail(f"metadata issuer {metadata.get('issuer')!r} is not {issuer!r}")
    for member in ("token_endpoint", "jwks_uri", "introspection_endpoint", "revocation_endpoint"):
        if not str(metadata.get(member, "")).startswith(issuer + "/"):
            fail(f"{member} {metadata.get(member)!r} is not under {issuer}")
    if "client_credentials" not in metadata.get("grant_types_supported", []):
        fail("client_credentials is not among grant_types_supported")
    print(f"oauth: discovered {metadata['token_endpoint']}")

    client = OAuth2Session(
        args.client_id,
        args.client_secret,
        token_endpoint_auth_method="client_secret_basic",
    )
    token = client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    access_token = token["access_token"]
    if token.get("token_type", "").lower() != "bearer" or "refresh_token" in token:
        fail(f"unexpected token response members: {sorted(token)}")
    header = jwt.get_unverified_header(access_token)
    keys = requests.get(metadata["jwks_uri"], timeout=10).json()["keys"]
    if keys:
        key = jwt.PyJWKClient(metadata["jwks_uri"]).get_signing_key(header["kid"]).key
        claims = jwt.decode(
            access_token, key, algorithms=[header["alg"]], audience="tessera",
            options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub"]},
        )
        print(f"oauth: service token verified with the JWKS ({header['alg']})")
    else:
        claims = jwt.decode(access_token, options={"verify_signature": False})
        print("oauth: HS256, no published key: service token read, not verified")
    if claims.get("role") != "service" or claims.get("sub") != args.client_id:
        fail(f"service token claims: role={claims.get('role')} sub={claims.get('sub')}")
    if claims.get("client_id") != args.client_id:
        fail("service token without its client_id")

    def introspect(what, value):
        result = client.introspect_token(
            metadata["introspection_endpoint"], token=value, token_type_hint=what
        )
        result.raise_for_status()
        return result.json()

    for what, value in (("access_token", args.user_token), ("refresh_token", args.user_refresh)):
        body = introspect(what, value)
        if body.get("active") is not True:
            fail(f"the user's {what} is not active before revocation: {body}")
        print(f"oauth: introspected the user's {what}: active, sub={body.get('sub')}, sid={body.get('sid')}")

    result = client.revoke_token(
        metadata["revocation_endpoint"], token=args.user_refresh, token_type_hint="refresh_token"
    )
    if result.status_code != 200:
        fail(f"revocation answered {result.status_code}: {result.text}")
    print("oauth: revoked the user's refresh token")
    for what, value in (("refresh_token", args.user_refresh), ("access_token", args.user_token)):
        body = introspect(what, value)
        if body != {"active": False}:
            fail(f"the user's {what} is still active after revocation: {body}")
        print(f"oauth: introspected the user's {what} again: inactive")

    wrong = OAuth2Session(args.client_id, "not-the-secret", token_endpoint_auth_method="client_secret_basic")
    try:
        wrong.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
        fail("a wrong secret got a token")
    except OAuthError as error:
        if error.error != "invalid_client":
            fail(f"a wrong secret got {error.error}, not invalid_client")
    print("oauth: a wrong secret is refused with invalid_client")
    print("oauth: all steps passed")


if __name__ == "__main__":
    main()
