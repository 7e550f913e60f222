# Shared by bench/run.sh and bench/scale.sh: start/stop a Tessera on $DATA
# (needs BIN, DATA, OUT, SUMMARY, DUR set), read its CPU and peak RSS, run
# wrk and summarise. Sourced, not run.

need() { command -v "$1" >/dev/null 2>&1; }
need_tools() {
  if ! need wrk || ! need curl || ! need taskset; then
    echo "installing wrk/curl from Debian's packages"
    apt-get update -qq && apt-get install -y -qq wrk curl util-linux >/dev/null
  fi
}

SRV=""; PARTNER=""; ADMIN=""
start() { # starts Tessera on $DATA, sets SRV PARTNER ADMIN
  # Every load comes from 127.0.0.1 here, the flood's 256 connections and
  # the honest ones beside them alike: lift the per-address cap (256 by
  # default), which would otherwise close the honest ones.
  "$BIN" serve --data-dir "$DATA" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --throttle-failures 1000000 --max-connections-per-address 4096 ${SERVE_ARGS:-} 2>"$OUT/server.log" &
  SRV=$!
  for _ in $(seq 1 200); do
    grep -q 'listening admin=' "$OUT/server.log" 2>/dev/null && break; sleep 0.01
  done
  PARTNER=$(grep -o 'listening partner=[0-9.:]*' "$OUT/server.log" | cut -d= -f2)
  ADMIN=$(grep -o 'listening admin=[0-9.:]*' "$OUT/server.log" | cut -d= -f2)
}
stop() { kill "$SRV" 2>/dev/null || true; wait "$SRV" 2>/dev/null || true; }
trap stop EXIT

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_peak_kib() { awk '/VmHWM/{print $2}' "/proc/$1/status"; }
summ() { # file label ticks -> prints and records "label rps p50 p99 non2xx cpu_us"
  local f=$1 rps p50 p99 non2xx reqs cpuus
  rps=$(awk '/Requests\/sec/{print $2}' "$f"); p50=$(awk '$1=="50%"{print $2}' "$f")
  p99=$(awk '$1=="99%"{print $2}' "$f"); non2xx=$(awk '/Non-2xx/{print $NF}' "$f")
  reqs=$(awk '/requests in/{print $1}' "$f")
  cpuus=$(awk -v t="$3" -v n="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN{ if (n>0) printf "%.1f", t/hz*1e6/n; else print "n/a"}')
  printf '%-34s req/s=%-10s p50=%-9s p99=%-9s non2xx=%-5s srv_cpu_us/req=%s\n' \
    "$2" "$rps" "$p50" "$p99" "${non2xx:-0}" "$cpuus" | tee -a "$SUMMARY"
}
measure() { # label conns wrk-args...
  local label=$1 c=$2; shift 2
  wrk -t1 -c"$c" -d3s "$@" >/dev/null 2>&1 || true        # warm-up
  local f="$OUT/wrk-${label// /_}.txt" t0 t1
  t0=$(cpu_ticks "$SRV")
  wrk -t1 -c"$c" -d"$DUR" --latency "$@" >"$f" 2>&1
  t1=$(cpu_ticks "$SRV")
  summ "$f" "$label -c$c" $((t1 - t0))
}
rps_of() { awk -v l="$1" 'index($0, l) == 1 { for (i = 1; i <= NF; i++) if ($i ~ /^req\/s=/) { sub("req/s=", "", $i); print $i } }' "$2" | tail -1; }

