#!/usr/bin/env bash
# Last step of `make bench`: copies the scale tables bench/scale.sh just wrote
# (time and peak memory per stage at 1M, 10M and 30M rows per table, the
# 8 GiB check and the growth) into bench/results.md, under the 1M comparison
# with the scripts, so one file shows both from the same `make bench` run.
#
#   BENCH_OUT=bench/results.md   SCALE_OUT=bench/scale-results.md
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${BENCH_OUT:-bench/results.md}
SCALE=${SCALE_OUT:-bench/scale-results.md}
[[ -f "$OUT" && -f "$SCALE" ]] || { echo "bench: needs $OUT and $SCALE (run bench/run.sh and bench/scale.sh first)" >&2; exit 1; }
HEADING="## Scale: 1M, 10M and 30M rows per table (bench/scale.sh, same \`make bench\` run)"
# Idempotent: an earlier copy of the section (from here to the end) goes first.
tmp=$(mktemp "$OUT.XXXXXX")
awk -v h="$HEADING" '$0 == h { exit } { print }' "$OUT" > "$tmp"
{
    echo "$HEADING"
    echo
    # scale-results.md without its title line: its own description, the
    # per-stage table, the 8 GiB verdict, the growth and the accuracy.
    tail -n +2 "$SCALE" | sed 's/^## /### /'
} >> "$tmp"
mv "$tmp" "$OUT"
echo "bench: scale tables from $SCALE copied into $OUT" >&2
