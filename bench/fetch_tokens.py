"""Fetches N distinct tokens over one keep-alive connection: fetch_tokens.py HOST:PORT N USERS."""
import http.client, random, sys

host, n, users = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conn = http.client.HTTPConnection(host)
for _ in range(n):
    u = random.randrange(users)
    conn.request("POST", "/generateToken?username=user%06d&password=00000000-0000-4000-8000-%012d" % (u, u))
    r = conn.getresponse()
    body = r.read().decode()
    assert r.status == 200, (r.status, body)
    print(body)
