"""Drives Tessera's OAuth 2.0 endpoints with authlib, a client nobody here
wrote: client_credentials with both token_endpoint_auth_methods, then
introspection and revocation. Prints one JSON object with what it saw.

usage: authlib_client.py PARTNER_URL CLIENT_ID  (the client secret on stdin)
"""
import json
import os
import sys

os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # loopback http in tests
from authlib.integrations.requests_client import OAuth2Session  # noqa: E402

base, client_id = sys.argv[1:3]
secret = sys.stdin.read().strip()
seen = {}
for method in ("client_secret_basic", "client_secret_post"):
    session = OAuth2Session(client_id, secret, token_endpoint_auth_method=method)
    token = session.fetch_token(base + "/oauth/token", grant_type="client_credentials")
    introspected = session.introspect_token(
        base + "/oauth/introspect", token=token["access_token"]
    ).json()
    revoked = session.revoke_token(base + "/oauth/revoke", token=token["access_token"])
    after = session.introspect_token(
        base + "/oauth/introspect", token=token["access_token"]
    ).json()
    seen[method] = {
        "token_type": token["token_type"],
        "expires_in": token["expires_in"],
        "active_before": introspected["active"],
        "sub": introspected.get("sub"),
        "revoke_status": revoked.status_code,
        "active_after": after["active"],
    }
print(json.dumps(seen))
