"""Builds an import snapshot: the header and keys of an existing export
(stdin) plus N users (and the end line with the counts) with generated-style passwords
00000000-0000-4000-8000-NNNNNNNNNNNN hashed as Tessera's sha256-salted scheme."""
import base64, hashlib, json, sys

n = int(sys.argv[1])
keys = 0
for line in sys.stdin:
    kind = json.loads(line)["type"]
    if kind in ("header", "key"):
        sys.stdout.write(line)
        keys += kind == "key"
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
salt = bytes(range(16))
for i in range(n):
    pw = "00000000-0000-4000-8000-%012d" % i
    user = {"username": "user%06d" % i, "status": "active", "created_at": 1, "updated_at": 1,
            "expires_at": None, "token_ttl_secs": None, "tokens_valid_after": None, "note": None,
            "password": {"sha256-salted": {"salt": b64(salt),
                         "hash": b64(hashlib.sha256(salt + pw.encode()).digest())}}}
    sys.stdout.write(json.dumps({"type": "user", "user": user}, separators=(",", ":")) + "\n")
sys.stdout.write(json.dumps({"type": "end", "users": n, "keys": keys, "revocations": 0}) + "\n")
