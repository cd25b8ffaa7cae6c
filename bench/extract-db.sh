#!/usr/bin/env bash
# `make bench-db` (and part of `make bench`): extraction from PostgreSQL
# against the database's own COPY, side by side on the same server and rows.
# Loads ROWS (1 000 000) synthetic rows per table into a throwaway server
# (tests/with-postgres.sh), then, alternating, best of RUNS (3) each:
#   psql \copy (SELECT * FROM <table> WHERE created_at > now() - interval '30 days') TO file CSV HEADER
#   extract --source postgres --days 30
# and writes bench/extract-db-results.md (time, rows/s, peak memory).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${DATABASE_URL:-}" ]]; then
    exec tests/with-postgres.sh "$0" "$@"
fi
command -v psql > /dev/null || { echo "bench: needs psql (apt-get install postgresql)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "bench: needs GNU time (apt-get install time)" >&2; exit 1; }
ROWS=${ROWS:-1000000}
RUNS=${RUNS:-3}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release}
OUT=${BENCH_OUT:-bench/extract-db-results.md}
WORK=$(mktemp -d /tmp/gm-bench-db.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export TABLES="ai_gm_explanations ai_gm_quality_feedback ai_gm_ab_testing" WORK BIN

echo "bench: loading $ROWS rows per table into PostgreSQL" >&2
"$BIN/synth" --rows "$ROWS" --seed 42 --format csv --out "$WORK/exports" > /dev/null
PGOPTIONS='-c client_min_messages=warning' psql -q -v ON_ERROR_STOP=1 "$DATABASE_URL" <<SQL
DROP TABLE IF EXISTS ai_gm_explanations, ai_gm_quality_feedback, ai_gm_ab_testing;
CREATE TABLE ai_gm_explanations (id uuid PRIMARY KEY, created_at timestamptz NOT NULL,
    provider text, model text, action_type text, scenario_id text,
    quality_score double precision, metadata jsonb);
CREATE TABLE ai_gm_quality_feedback (id uuid PRIMARY KEY, created_at timestamptz NOT NULL,
    session_id text, user_id uuid, response_id text, provider text, model text, action_type text,
    quality_rating numeric, feedback_text text, response_time_ms double precision);
CREATE TABLE ai_gm_ab_testing (id uuid PRIMARY KEY, created_at timestamptz NOT NULL,
    experiment_name text, variant text, provider text, model text, response_id text,
    predicted_quality real, user_rating numeric);
\copy ai_gm_explanations FROM '$WORK/exports/ai_gm_explanations.csv' CSV HEADER
\copy ai_gm_quality_feedback FROM '$WORK/exports/ai_gm_quality_feedback.csv' CSV HEADER
\copy ai_gm_ab_testing FROM '$WORK/exports/ai_gm_ab_testing.csv' CSV HEADER
CREATE INDEX ON ai_gm_explanations (created_at);
CREATE INDEX ON ai_gm_quality_feedback (created_at);
CREATE INDEX ON ai_gm_ab_testing (created_at);
VACUUM ANALYZE;
SQL
rm -rf "$WORK/exports"

psql_copy() {
    for t in $TABLES; do
        psql -q -v ON_ERROR_STOP=1 "$DATABASE_URL" \
            -c "\\copy (SELECT * FROM $t WHERE created_at > now() - interval '30 days') TO '$WORK/copy/$t.csv' CSV HEADER"
    done
}
ours() {
    "$BIN/extract" --data "$WORK/data" --source postgres --days 30 --quiet
}
export -f psql_copy ours
# timed NAME FUNCTION: appends "NAME SECONDS PEAK_MIB"
timed() {
    local name=$1; shift
    rm -rf "$WORK/copy" "$WORK/data"; mkdir -p "$WORK/copy"
    /usr/bin/time -f "%e %M" -o "$WORK/.time" bash -c "$1" > "$WORK/$name.log" 2>&1 \
        || { echo "bench: $name failed" >&2; cat "$WORK/$name.log" >&2; exit 1; }
    read -r secs kib < "$WORK/.time"
    echo "$name $secs $((kib / 1024))" | tee -a "$WORK/times" >&2
}
: > "$WORK/times"
for _ in $(seq "$RUNS"); do
    timed psql psql_copy
    timed extract ours
done
rows=$(psql -tA "$DATABASE_URL" -c "SELECT (SELECT count(*) FROM ai_gm_explanations WHERE created_at > now() - interval '30 days') + (SELECT count(*) FROM ai_gm_quality_feedback WHERE created_at > now() - interval '30 days') + (SELECT count(*) FROM ai_gm_ab_testing WHERE created_at > now() - interval '30 days')")
python3 - "$WORK/times" "$rows" "$ROWS" "$RUNS" > "$OUT" <<'PY'
import sys
times, rows, per_table, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
runs_of = {}
for line in open(times):
    name, secs, mib = line.split()
    runs_of.setdefault(name, []).append((float(secs), int(mib)))
best = {n: min(r) for n, r in runs_of.items()}
p, e = best["psql"], best["extract"]
print("# Extraction from PostgreSQL against its own COPY\n")
print(f"`bench/extract-db.sh`: {per_table:,} rows per table on a local PostgreSQL, last 30 days "
      f"({rows:,} rows in all), best of {runs} each, alternating.\n")
print("| | seconds (runs) | rows/s | peak MiB |")
print("|---|---|---|---|")
for name, label in (("psql", "`psql \\copy ... TO file CSV HEADER`, three tables"),
                    ("extract", "`extract --source postgres --days 30` (Parquet parts, every row classified)")):
    s, m = best[name]
    all_runs = ", ".join(f"{x:.1f}" for x, _ in runs_of[name])
    print(f"| {label} | {s:.1f} ({all_runs}) | {rows / s:,.0f} | {m} |")
print(f"\nextract / psql: **{e[0] / p[0]:.2f}x**")
PY
cat "$OUT"
