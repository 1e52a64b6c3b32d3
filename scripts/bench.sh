#!/usr/bin/env bash
# make bench: the production server vs a naive baseline, one after the other, on loopback,
# under the same closed-loop load from wrk (100 connections). Prints requests/s and
# p50/p99 latency for both and the throughput ratio.
#   production: cd app && python -m articles   (granian, cached pages, metrics, JSON log)
#   baseline:   plain Flask rendering the article template per request, gunicorn sync
#               workers, one per core (app/bench/baseline.py)
#   redis:      the production server with the shared store on: a real redis-server on
#               loopback (append-only file, fsync every second, as the StateStore runs it);
#               every request counts one view and makes the new visitor's session, since wrk
#               sends no cookies. Skipped when redis-server is not installed.
# Knobs: BENCH_SECONDS (default 15), BENCH_CONNECTIONS (100), BENCH_PATH (/article/1).
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PY:-venv/bin/python}"
SECONDS_PER_RUN="${BENCH_SECONDS:-15}"
CONNS="${BENCH_CONNECTIONS:-100}"
URL_PATH="${BENCH_PATH:-/article/1}"
CORES="$(nproc)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/articles-bench.XXXXXX")"
command -v wrk >/dev/null || { echo "bench: wrk is missing (make tools installs it)" >&2; exit 1; }
"$PY" -c 'import gunicorn, granian' 2>/dev/null \
  || { echo "bench: gunicorn/granian missing in $PY (make venv)" >&2; exit 1; }

SERVER_PID=""
REDIS_PID=""
stop_redis() {
  if [ -n "$REDIS_PID" ]; then kill -TERM "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
  REDIS_PID=""
}
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -INT "$SERVER_PID" 2>/dev/null || true   # both servers stop at once on SIGINT
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
trap 'stop_server; stop_redis; rm -rf "$WORK"' EXIT

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_ready() {  # port: poll the benchmarked path until 200, at most 30 s
  "$PY" - "$1" "$URL_PATH" <<'PYEOF'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}{sys.argv[2]}"
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(f"bench: no 200 from {url} within 30 s")
PYEOF
}

to_ms() {  # wrk latency like 812.00us / 7.20ms / 1.02s -> milliseconds
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0;
                        else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'
}

declare -A RPS P50 P99 ERRS
run_load() {  # name port
  local name="$1" url="http://127.0.0.1:$2$URL_PATH" out="$WORK/$1.wrk"
  wrk -t2 -c"$CONNS" -d3s "$url" >/dev/null            # warm-up: connections, caches
  wrk -t2 -c"$CONNS" -d"${SECONDS_PER_RUN}s" --timeout 5s --latency "$url" >"$out"
  RPS[$name]="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
  P50[$name]="$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")"
  P99[$name]="$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")"
  local non2xx sockerr
  non2xx="$(awk '/Non-2xx/ {print $NF}' "$out")"
  sockerr="$(awk -F'[ ,]+' '/Socket errors/ {print $4+$6+$8+$10}' "$out")"
  ERRS[$name]="$(( ${non2xx:-0} + ${sockerr:-0} ))"
}

load="$(cut -d' ' -f1 /proc/loadavg)"
echo "bench: load average before start: $load (other processes on the machine skew the figures)"
echo "bench: $CORES cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), wrk -t2 -c$CONNS -d${SECONDS_PER_RUN}s $URL_PATH"

port="$(free_port)"
echo "bench: production server (python -m articles, WEB_CONCURRENCY=${WEB_CONCURRENCY:-2}) on :$port"
(cd app && HOST=127.0.0.1 PORT="$port" POD_NAME=bench DRAIN_SECONDS=0 \
   exec "../$PY" -m articles >"$WORK/production.log" 2>"$WORK/production.err") &
SERVER_PID=$!
wait_ready "$port"
run_load production "$port"
stop_server
# One JSON line per request was written throughout: show that the log was real.
echo "bench: production wrote $(wc -l <"$WORK/production.log") JSON log lines"

NAMES=(production)
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
  rport="$(free_port)"
  mkdir "$WORK/redis"
  redis-server --port "$rport" --bind 127.0.0.1 --dir "$WORK/redis" --requirepass bench \
    --save "" --appendonly yes --appendfsync everysec --daemonize no \
    --logfile "$WORK/redis/redis.log" &
  REDIS_PID=$!
  for _ in $(seq 1 100); do
    [ "$(REDISCLI_AUTH=bench redis-cli -p "$rport" ping 2>/dev/null)" = PONG ] && break
    sleep 0.1
  done
  port="$(free_port)"
  echo "bench: production server with the Redis store (redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on :$rport) on :$port"
  (cd app && HOST=127.0.0.1 PORT="$port" POD_NAME=bench DRAIN_SECONDS=0 \
     REDIS_URL="redis://127.0.0.1:$rport/0" REDIS_PASSWORD=bench \
     exec "../$PY" -m articles >"$WORK/redis.log" 2>"$WORK/redis.err") &
  SERVER_PID=$!
  wait_ready "$port"
  run_load redis "$port"
  sleep 1  # requests still in flight when wrk stopped finish (and are logged) before the stop
  stop_server
  views="$(REDISCLI_AUTH=bench redis-cli -p "$rport" get "articles:views:${URL_PATH##*[!0-9]}" 2>/dev/null || true)"
  echo "bench: redis holds ${views:-?} views of $URL_PATH for $(grep -c '"path": "'"$URL_PATH"'"' "$WORK/redis.log") requests the server logged"
  stop_redis
  NAMES+=(redis)
else
  echo "bench: redis-server not installed: the shared-store run is skipped (make tools installs it)"
fi

port="$(free_port)"
echo "bench: baseline (Flask, gunicorn sync x$CORES, template rendered per request) on :$port"
(cd app && POD_NAME=bench PYTHONPATH="$PWD" exec "../$PY" -m gunicorn --chdir bench -k sync \
   -w "$CORES" -b "127.0.0.1:$port" --log-level warning baseline:app \
   >"$WORK/baseline.log" 2>"$WORK/baseline.err") &
SERVER_PID=$!
wait_ready "$port"
run_load baseline "$port"
stop_server

printf '\n%-11s %12s %10s %10s %8s\n' server "requests/s" "p50 ms" "p99 ms" errors
for name in "${NAMES[@]}" baseline; do
  printf '%-11s %12s %10s %10s %8s\n' "$name" "${RPS[$name]}" "${P50[$name]}" "${P99[$name]}" "${ERRS[$name]}"
done
ratio="$(awk -v a="${RPS[production]}" -v b="${RPS[baseline]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
echo
echo "throughput ratio production/baseline: ${ratio}x (target >= 2x)"
echo "production p99: ${P99[production]} ms (target <= 30 ms)"
met="$(awk -v r="$ratio" -v p="${P99[production]}" -v e="${ERRS[production]}" \
  'BEGIN { print (r >= 2 && p <= 30 && e == 0) ? "yes" : "no" }')"
echo "targets met: $met"
if [ -n "${RPS[redis]:-}" ]; then
  share="$(awk -v a="${RPS[redis]}" -v b="${RPS[production]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
  echo "with the Redis store: ${share} of the production throughput (target >= 0.50), p99 ${P99[redis]} ms, errors ${ERRS[redis]}"
  awk -v s="$share" -v e="${ERRS[redis]}" 'BEGIN { print "store target met: " ((s >= 0.5 && e == 0) ? "yes" : "no") }'
fi
