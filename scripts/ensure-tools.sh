#!/usr/bin/env bash
# Installs the tools the tests drive, from Debian's packages, when missing:
#   scripts/ensure-tools.sh COMMAND=PACKAGE …   e.g. nginx=nginx caddy=caddy
# Runs apt-get as root, or through sudo. Never starts the packages' own
# services' listeners for the tests: the tests start their own instances.
set -euo pipefail
missing=()
for pair in "$@"; do
    command="${pair%%=*}" package="${pair#*=}"
    if ! command -v "$command" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$command" ]; then
        missing+=("$package")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo -n)
# A lock so parallel tests install one at a time.
exec 9>/tmp/tessera-ensure-tools.lock
flock 9
export DEBIAN_FRONTEND=noninteractive
# Keep the packages' services from starting (no init here, or not ours).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy" >/dev/null
    "${as_root[@]}" chmod +x "$policy"
    trap '"${as_root[@]}" rm -f "$policy"' EXIT
fi
"${as_root[@]}" apt-get install -y -q "${missing[@]}" >&2 \
    || { "${as_root[@]}" apt-get update -q >&2 && "${as_root[@]}" apt-get install -y -q "${missing[@]}" >&2; }
