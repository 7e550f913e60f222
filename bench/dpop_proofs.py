"""Writes COUNT DPoP proofs (RFC 9449), one per line, for HTM HTU, signed
by the Ed25519 key whose 32-byte seed is 0x15 repeated (the bench's
partner key), each with its own jti and iat = now; with a token on stdin
(one line), each carries its ath.

    python3 dpop_proofs.py COUNT HTM HTU [--ath] < token > proofs.txt

Env PREFIX makes the jtis of parallel runs distinct.
"""
import base64, hashlib, json, os, sys, time
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
count, htm, htu = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ath = None
if "--ath" in sys.argv:
    ath = b64(hashlib.sha256(sys.stdin.readline().strip().encode()).digest())
key = Ed25519PrivateKey.from_private_bytes(bytes([0x15] * 32))
x = b64(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
header = b64(json.dumps({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": x}},
                        separators=(",", ":")).encode())
now = int(time.time())
out = sys.stdout
for i in range(count):
    claims = {"jti": "%s%d-%d" % (os.environ.get("PREFIX", "b"), now, i), "htm": htm, "htu": htu, "iat": now}
    if ath:
        claims["ath"] = ath
    signing_input = header + "." + b64(json.dumps(claims, separators=(",", ":")).encode())
    out.write(signing_input + "." + b64(key.sign(signing_input.encode())) + "\n")
