"""Builds an import snapshot: the header and keys of an existing export
(stdin) plus N users (and the end line with the counts) with generated-style passwords
00000000-0000-4000-8000-NNNNNNNNNNNN hashed as Tessera's sha256-salted scheme.
Env RESTRICTED=K disables the last K users (changed now, so the revocation
feed carries them) and REVOKED=M adds M revoked jtis alive for an hour.
TWO_SECRETS=1 gives every user a rotation in progress (SPEC §15): the
password above is the current secret, and a previous one (another UUID)
stays valid for 30 days, so every login checks two real hashes."""
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
two_secrets = os.environ.get("TWO_SECRETS", "0") == "1"
sha = lambda pw: {"sha256-salted": {"salt": b64(salt), "hash": b64(hashlib.sha256(salt + pw.encode()).digest())}}
for i in range(n):
    pw = "00000000-0000-4000-8000-%012d" % i
    user = {"username": "user%06d" % i, "status": "active", "created_at": 1, "updated_at": 1,
            "expires_at": None, "token_ttl_secs": None, "tokens_valid_after": None, "note": None,
            "password": {"sha256-salted": {"salt": b64(salt),
                         "hash": b64(hashlib.sha256(salt + pw.encode()).digest())}}}
    if two_secrets:
        user.update(secret={"id": "%08x" % (2 * i + 1), "created_at": now, "last_used_at": None},
                    previous_secret={"hash": sha("00000000-0000-4000-9000-%012d" % i),
                                     "info": {"id": "%08x" % (2 * i + 2), "created_at": 1, "last_used_at": None},
                                     "expires_at": now + 30 * 86400})
    if i >= n - restricted:
        user.update(status="disabled", updated_at=now, tokens_valid_after=now)
    sys.stdout.write(json.dumps({"type": "user", "user": user}, separators=(",", ":")) + "\n")
for j in range(revoked):
    sys.stdout.write(json.dumps({"type": "revocation", "jti": "%022d" % j, "exp": now + 3600}) + "\n")
sys.stdout.write(json.dumps({"type": "end", "users": n, "keys": keys, "revocations": revoked}) + "\n")
