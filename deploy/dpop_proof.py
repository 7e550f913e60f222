#!/usr/bin/env python3
"""Prints a DPoP proof (RFC 9449) for one request, signed with your
Ed25519 key, for use with curl (docs/api.md, "Sender-constrained tokens").

    python3 dpop_proof.py KEY.pem METHOD URL [--token-stdin] [< token]

KEY.pem: an Ed25519 private key (openssl genpkey -algorithm ed25519).
With --token-stdin the access token is read from stdin and the proof
carries its hash (ath), as every call with a bound token needs; the
token never goes on the command line. Needs Python's `cryptography`.
"""
import base64
import hashlib
import json
import sys
import time
import uuid

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main() -> None:
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    key_file, method, url = sys.argv[1:4]
    with open(key_file, "rb") as f:
        key = load_pem_private_key(f.read(), password=None)
    x = b64(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    header = {"typ": "dpop+jwt", "alg": "EdDSA", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": x}}
    # htu is the URL without its query or fragment (RFC 9449 §4.2).
    claims = {"jti": str(uuid.uuid4()), "htm": method, "htu": url.split("?")[0].split("#")[0],
              "iat": int(time.time())}
    if "--token-stdin" in sys.argv[4:]:
        token = sys.stdin.readline().strip()
        claims["ath"] = b64(hashlib.sha256(token.encode()).digest())
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    print(signing_input + "." + b64(key.sign(signing_input.encode())))


if __name__ == "__main__":
    main()
