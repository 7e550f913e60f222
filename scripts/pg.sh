#!/usr/bin/env bash
# A throwaway PostgreSQL for tests and benchmarks, on a free local port:
#   scripts/pg.sh start DIR [PID]  initdb in DIR (as the unprivileged `postgres`
#                             user when run as root), start it, print its URL;
#                             with PID, it is removed when that process ends
#   scripts/pg.sh stop DIR    stop it (fast shutdown)
#   scripts/pg.sh kill DIR    stop it at once (immediate: like a crash)
#   scripts/pg.sh restart DIR start it again on the same port
# With PG_SSL_DIR set (holding server.crt and server.key), the server speaks
# TLS (ssl=on) with that certificate.
# Installs Debian's `postgresql` package when no server binaries are found.
set -euo pipefail
cmd=$1 dir=$2
bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
if [ -z "$(bindir)" ]; then
    bash "$(dirname "$0")/ensure-tools.sh" pg_ctlcluster=postgresql >&2
fi
BIN=$(bindir)
as_pg=()
if [ "$(id -u)" -eq 0 ]; then as_pg=(runuser -u postgres --); fi
pgctl() { "${as_pg[@]}" "$BIN/pg_ctl" -D "$dir/data" "$@"; }
case $cmd in
start)
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "${as_pg[@]}" "$BIN/initdb" -D "$dir/data" -U tessera --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    echo "$port" >"$dir/port"
    ssl=""
    if [ -n "${PG_SSL_DIR:-}" ]; then
        cp "$PG_SSL_DIR/server.crt" "$PG_SSL_DIR/server.key" "$dir/"
        chmod 600 "$dir/server.key"
        [ "$(id -u)" -eq 0 ] && chown postgres "$dir/server.crt" "$dir/server.key"
        ssl="-c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key"
    fi
    echo "$ssl" >"$dir/ssl"
    pgctl -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200 $ssl" \
        -l "$dir/server.log" -w start >/dev/null
    "${as_pg[@]}" "$BIN/createdb" -h 127.0.0.1 -p "$port" -U tessera tessera
    # With an owner pid: stop and remove the instance once that process ends.
    if [ -n "${3:-}" ]; then
        nohup setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; bash "$2" kill "$3"; rm -rf "$3"' \
            _ "$3" "$0" "$dir" >/dev/null 2>&1 &
    fi
    echo "postgres://tessera@127.0.0.1:$port/tessera"
    ;;
stop) pgctl -m fast -w stop >/dev/null ;;
kill) pgctl -m immediate -w stop >/dev/null ;;
restart)
    port=$(cat "$dir/port")
    pgctl -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 $(cat "$dir/ssl" 2>/dev/null)" \
        -l "$dir/server.log" -w start >/dev/null
    ;;
*) echo "usage: $0 start|stop|kill|restart DIR" >&2; exit 2 ;;
esac
