#!/usr/bin/env bash
# Test-environment start-up (SPEC §6): `tessera serve --ephemeral --seed`
# with 1,000 users whose passwords are UUIDs, timed from the moment the
# process is started until GET /readyz answers 200 (polled every 1 ms from
# one Python process, so no curl start-up is counted). Rerunnable:
#   bash bench/ephemeral.sh            (STARTS=20 USERS=1000)
# Prints each start, then the median and max.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
STARTS=${STARTS:-20}; USERS=${USERS:-1000}
(cd "$ROOT" && cargo build --release -q)
BIN=$ROOT/target/release/tessera
python3 - "$BIN" "$STARTS" "$USERS" <<'PY'
import http.client, os, socket, statistics, subprocess, sys, tempfile, time, uuid

binary, starts, users = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
work = tempfile.mkdtemp()
seed = os.path.join(work, "seed.toml")
with open(seed, "w") as f:
    for i in range(users):
        f.write(f'[[user]]\nusername = "partner{i:05}"\npassword = "{uuid.uuid4()}"\n\n')

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

times = []
for n in range(starts):
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [binary, "serve", "--ephemeral", "--seed", seed, "--data-dir", os.path.join(work, "never"),
         "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None:
            sys.exit(f"tessera exited with {proc.returncode}")
        time.sleep(0.001)
    ms = (time.perf_counter() - t0) * 1000
    times.append(ms)
    proc.terminate(); proc.wait()
    assert not os.path.exists(os.path.join(work, "never")), "--ephemeral wrote a data dir"
    print(f"start {n + 1}: ready in {ms:.1f} ms")
print(f"ephemeral + seed of {users} UUID-password users: /readyz 200 after "
      f"median {statistics.median(times):.1f} ms, max {max(times):.1f} ms over {starts} starts (target <= 150 ms)")
PY
