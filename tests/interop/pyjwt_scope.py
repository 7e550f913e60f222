"""Verifies a Tessera token with PyJWT against the server's JWKS and prints
its scope claim: a JWT library nobody here wrote reads Tessera's scopes.

Usage: pyjwt_scope.py PARTNER_URL < token
"""
import sys

import jwt

partner = sys.argv[1]
token = sys.stdin.read().strip()
client = jwt.PyJWKClient(partner + "/.well-known/jwks.json")
key = client.get_signing_key_from_jwt(token)
claims = jwt.decode(token, key.key, algorithms=["EdDSA"], issuer="tessera")
print(claims.get("scope", ""))
