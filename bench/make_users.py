"""Builds an import snapshot: the header and keys of an existing export
(stdin) plus N users (and the end line with the counts) with generated-style passwords
00000000-0000-4000-8000-NNNNNNNNNNNN hashed as Tessera's sha256-salted scheme.
Env RESTRICTED=K disables the last K users (changed now, so the revocation
feed carries them) and REVOKED=M adds M revoked jtis alive for an hour."""
import base64, hashlib, json, os, sys, time

n = int(sys.argv[1])
keys = 0
for line in sys.stdin:
    kind = json.loads(line)["type"]
    if kind in ("header", "key"):
        sys.stdout.write(line)
        keys += kind == "key"
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
salt = bytes(range(16))
now = int(time.time())
restricted = int(os.environ.get("RESTRICTED", "0"))
revoked = int(os.environ.get("REVOKED", "0"))
for i in range(n):
    pw = "00000000-0000-4000-8000-%012d" % i
    user = {"username": "user%06d" % i, "status": "active", "created_at": 1, "updated_at": 1,
            "expires_at": None, "token_ttl_secs": None, "tokens_valid_after": None, "note": None,
            "password": {"sha256-salted": {"salt": b64(salt),
                         "hash": b64(hashlib.sha256(salt + pw.encode()).digest())}}}
    if i >= n - restricted:
        user.update(status="disabled", updated_at=now, tokens_valid_after=now)
    sys.stdout.write(json.dumps({"type": "user", "user": user}, separators=(",", ":")) + "\n")
for j in range(revoked):
    sys.stdout.write(json.dumps({"type": "revocation", "jti": "%022d" % j, "exp": now + 3600}) + "\n")
sys.stdout.write(json.dumps({"type": "end", "users": n, "keys": keys, "revocations": revoked}) + "\n")
