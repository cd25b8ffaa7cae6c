#!/usr/bin/env bash
# `make bench-serve` (and part of `make bench`): our `serve` against the
# service a Python team would write (bench/serve/fastapi_app.py: FastAPI +
# uvicorn, two workers, the same LightGBM model file), one after the other on
# the same machine, driven by wrk (throughput and latency at full load) and
# hey (latency at a fixed 1000 requests/s), for one-row and 100-row requests.
#
#   ROWS=200000 (synthetic rows per table to train on)   SECONDS_EACH=10
#   BENCH_DATA=dir (default: a temp folder)   BENCH_OUT=bench/serve-results.md
#
# Needs wrk and hey (apt-get install wrk hey) and, for the Python side,
# pip install fastapi uvicorn lightgbm numpy polars.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in wrk hey; do
    command -v $tool > /dev/null || { echo "bench: needs $tool (apt-get install wrk hey)" >&2; exit 1; }
done
python3 -c "import fastapi, uvicorn, lightgbm, numpy, polars" 2>/dev/null \
    || { echo "bench: pip install fastapi uvicorn lightgbm numpy polars (the FastAPI service needs them)" >&2; exit 1; }
ROWS=${ROWS:-200000}
SECS=${SECONDS_EACH:-10}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release}
WORK=${BENCH_DATA:-$(mktemp -d /tmp/gm-bench-serve.XXXXXX)}
OUT=${BENCH_OUT:-bench/serve-results.md}
OURS_PORT=${OURS_PORT:-18080}
PY_PORT=${PY_PORT:-18081}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)  # a relative BENCH_DATA or SCALE_DATA holds from any folder
pids=()
# The services stop when the run ends or fails; in a temp folder of our own,
# the trained data folder goes too (the logs and wrk/hey outputs stay).
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
      if [[ -z "${BENCH_DATA:-}" ]]; then rm -rf "$WORK/data"; echo "bench: logs in $WORK" >&2; fi' EXIT

if [[ ! -e "$WORK/data/models/csat" ]]; then
    echo "bench: training on $ROWS synthetic rows per table in $WORK/data" >&2
    "$BIN/synth" --rows "$ROWS" --seed 42 --data "$WORK/data" > /dev/null
    for stage in transform validate train; do "$BIN/$stage" --data "$WORK/data" > /dev/null; done
fi

# Request bodies: the first 1 and 100 clean csat rows, as the game would send them.
python3 - "$WORK" <<'PY'
import json, sys
import polars as pl
work = sys.argv[1]
df = pl.read_parquet(f"{work}/data/clean/csat.parquet").head(100)
rows = df.select("provider", "model", "action_type", "quality_score", "response_time_ms").to_dicts()
for n in (1, 100):
    with open(f"{work}/body-{n}.json", "w") as f:
        json.dump({"rows": rows[:n]}, f)
PY

wait_for() {
    for _ in $(seq 100); do curl -sf "$1" > /dev/null 2>&1 && return 0; sleep 0.1; done
    echo "bench: $1 never answered" >&2; exit 1
}

"$BIN/serve" --data "$WORK/data" --bind "127.0.0.1:$OURS_PORT" --threads 2 2> "$WORK/serve.log" & pids+=($!)
(cd bench/serve && MODEL_DIR="$WORK/data/models/csat" exec python3 -m uvicorn fastapi_app:app \
    --host 127.0.0.1 --port "$PY_PORT" --workers 2 --log-level warning) 2> "$WORK/fastapi.log" & pids+=($!)
wait_for "http://127.0.0.1:$OURS_PORT/readyz"
for _ in $(seq 100); do
    curl -sf -X POST -H 'Content-Type: application/json' --data @"$WORK/body-1.json" \
        "http://127.0.0.1:$PY_PORT/v1/predict/csat" > /dev/null 2>&1 && break
    sleep 0.2
done

# Both must give the same numbers before their speed means anything.
python3 - "$WORK" "$OURS_PORT" "$PY_PORT" <<'PY'
import json, sys, urllib.request
work, ours, py = sys.argv[1:]
body = open(f"{work}/body-100.json", "rb").read()
def ask(port):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/predict/csat", body, {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))["predictions"]
a, b = ask(ours), ask(py)
worst = max(abs(x - y) for x, y in zip(a, b))
assert len(a) == len(b) == 100 and worst < 1e-9, f"the services disagree by {worst}"
print(f"bench: both services give the same 100 predictions (largest difference {worst:.1e})", file=sys.stderr)
PY

# wrk_run NAME PORT ROWS -> "NAME ROWS req/s p50_ms p99_ms"
wrk_run() {
    local name=$1 port=$2 rows=$3
    BODY_FILE="$WORK/body-$rows.json" wrk -t2 -c32 -d"${SECS}s" --latency -s bench/serve/post.lua \
        "http://127.0.0.1:$port/v1/predict/csat" > "$WORK/wrk-$name-$rows.txt"
    awk -v n="$name" -v r="$rows" '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /Requests\/sec/ { rps = $2 }
        /^ +50%/ { p50 = ms($2) }
        /^ +99%/ { p99 = ms($2) }
        /Non-2xx/ { bad = $NF }
        END { if (bad) { print "bench: " n " answered " bad " non-2xx" > "/dev/stderr"; exit 1 }
              printf "%s %s %.0f %.2f %.2f\n", n, r, rps, p50, p99 }' "$WORK/wrk-$name-$rows.txt"
}

# hey_rate NAME PORT -> "NAME p50_ms p99_ms" for one-row requests at 1000/s
hey_rate() {
    local name=$1 port=$2
    hey -z "${SECS}s" -c 10 -q 100 -m POST -T application/json -D "$WORK/body-1.json" \
        "http://127.0.0.1:$port/v1/predict/csat" > "$WORK/hey-$name.txt"
    awk -v n="$name" '
        /Requests\/sec/ { rps = $2 }
        /  50% in/ { p50 = $3 * 1000 }
        /  99% in/ { p99 = $3 * 1000 }
        /\[200\]/ { ok = $2 }
        END { printf "%s %.0f %.2f %.2f %s\n", n, rps, p50, p99, ok }' "$WORK/hey-$name.txt"
}

: > "$WORK/results"
for rows in 1 100; do
    wrk_run serve "$OURS_PORT" "$rows" | tee -a "$WORK/results" >&2
    wrk_run fastapi "$PY_PORT" "$rows" | tee -a "$WORK/results" >&2
done
hey_rate serve "$OURS_PORT" | tee "$WORK/rate-serve" >&2
hey_rate fastapi "$PY_PORT" | tee "$WORK/rate-fastapi" >&2

{
    echo "# serve against FastAPI + uvicorn"
    echo
    echo "\`bench/serve.sh\` on $(nproc) cores, $(date -u +%Y-%m-%d). Models trained on $ROWS synthetic rows"
    echo "per table; csat model (LightGBM). wrk: 2 threads, 32 connections, ${SECS} s per row; hey: 10"
    echo "connections at a fixed 1000 requests/s for ${SECS} s. Load generator, server and the idle other"
    echo "server share the machine. Both services gave the same predictions first."
    echo
    echo "| rows per request | service | requests/s | p50 ms | p99 ms |"
    echo "|---|---|---|---|---|"
    while read -r name rows rps p50 p99; do
        echo "| $rows | $name | $rps | $p50 | $p99 |"
    done < "$WORK/results"
    echo
    echo "| at 1000 one-row requests/s | achieved/s | p50 ms | p99 ms | 200s |"
    echo "|---|---|---|---|---|"
    for name in serve fastapi; do
        read -r n rps p50 p99 ok < "$WORK/rate-$name"
        echo "| $n | $rps | $p50 | $p99 | $ok |"
    done
    echo
    awk '{ r[$1 " " $2] = $3; p[$1 " " $2] = $5 }
         END { for (n = 1; n <= 100; n += 99)
                 printf "- %d row(s): serve %.1fx the throughput of FastAPI; p99 %.2f ms vs %.2f ms\n",
                        n, r["serve " n] / r["fastapi " n], p["serve " n], p["fastapi " n] }' "$WORK/results"
} > "$OUT"
cat "$OUT"
