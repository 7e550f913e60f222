"""Writes N HTTP Basic header values for random bench users (the generated
passwords bench/make_users.py provisions): basic_headers.py N USERS."""
import base64, random, sys

n, users = int(sys.argv[1]), int(sys.argv[2])
for _ in range(n):
    u = random.randrange(users)
    pair = "user%06d:00000000-0000-4000-8000-%012d" % (u, u)
    print("Basic " + base64.b64encode(pair.encode()).decode())
