#!/usr/bin/env bash
# `make bench-scale` (part of `make bench`): the whole pipeline at growing
# sizes on synthetic raw data (synth writes the raw layer directly, standing
# in for extract, to spare the disk the CSV exports), every stage timed with
# its peak memory, and a check that every stage stays under the memory
# target. Writes bench/scale-results.md.
#
#   SCALE_CURVE="1000000 10000000 30000000" (rows per table, in order)
#   SCALE_LIMIT_MIB=8192 (every stage's peak must stay under this)
#   SCALE_DATA=dir (default: a temp folder; each size is removed once measured)
#   SCALE_OUT=bench/scale-results.md
#
# A 30M-rows-per-table run needs about 25 GB of disk (checked before each
# size starts) and 15 minutes here.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x /usr/bin/time ]] || { echo "bench: needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 1; }
CURVE=${SCALE_CURVE:-1000000 10000000 30000000}
LIMIT=${SCALE_LIMIT_MIB:-8192}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release}
WORK=${SCALE_DATA:-$(mktemp -d /tmp/gm-scale.XXXXXX)}
OUT=${SCALE_OUT:-bench/scale-results.md}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)  # a relative BENCH_DATA or SCALE_DATA holds from any folder
# A size's data folder goes whether its run ends or fails (a failed 30M run
# would otherwise leave 25 GB behind); the logs and times stay in $WORK.
trap 'rm -rf "$WORK"/data-*' EXIT

# timed N STAGE CMD...: one line "STAGE SECONDS PEAK_MIB CPU_SECONDS" into
# $WORK/times-N (CPU: user + system, every thread)
timed() {
    local n=$1 name=$2; shift 2
    /usr/bin/time -f "%e %M %U %S" -o "$WORK/.time" "$@" > "$WORK/$name-$n.log" 2>&1 \
        || { echo "bench-scale: $name at $n rows failed; see $WORK/$name-$n.log" >&2; tail -5 "$WORK/$name-$n.log" >&2; exit 1; }
    read -r secs kib user sys < "$WORK/.time"
    echo "$name $secs $((kib / 1024)) $(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')" \
        | tee -a "$WORK/times-$n" >&2
}

for n in $CURVE; do
    d="$WORK/data-$n"
    rm -rf "$d"
    # Measured: 838 MiB of layers and models per million rows per table (25,011
    # MiB at 30M). Ask for that plus a tenth before spending minutes on it.
    need=$((n / 1000000 * 920 + 200))
    free=$(df --output=avail -m "$WORK" | tail -1 | tr -d ' ')
    ((free >= need)) || { echo "bench-scale: $n rows per table needs about $need MiB of disk in $WORK, $free MiB free (set SCALE_DATA or SCALE_CURVE)" >&2; exit 1; }
    : > "$WORK/times-$n"
    echo "bench-scale: $n rows per table in $d" >&2
    timed "$n" synth "$BIN/synth" --data "$d" --rows "$n" --seed 42 --messy 0.02 --quiet
    timed "$n" transform "$BIN/transform" --data "$d" --quiet
    timed "$n" validate "$BIN/validate" --data "$d" --allow-small --quiet
    timed "$n" train "$BIN/train" --data "$d" --seed 42 --quiet
    timed "$n" report "$BIN/report" --data "$d" --quiet
    cp "$d/reports/training.json" "$WORK/training-$n.json"
    du -sm "$d" | cut -f1 > "$WORK/disk-$n"
    rm -rf "$d"
done

python3 - "$WORK" "$LIMIT" "$CURVE" > "$OUT" <<'PY'
import json, platform, subprocess, sys
work, limit, curve = sys.argv[1], int(sys.argv[2]), [int(n) for n in sys.argv[3].split()]
stages = ["synth", "transform", "validate", "train", "report"]
runs, used = {}, {}
for n in curve:
    t, c = {}, {}
    for line in open(f"{work}/times-{n}"):
        name, secs, mib, cpu_s = line.split()
        t[name] = (float(secs), int(mib))
        c[name] = float(cpu_s)
    runs[n], used[n] = t, c
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
mem = int(open("/proc/meminfo").readline().split()[1]) // 1024
print("# Scale: the whole pipeline from 1M to 30M rows per table\n")
print(f"`make bench-scale` (bench/scale.sh, part of `make bench`): `synth --rows N --messy 0.02` writes the raw "
      f"layer (it stands in for extract, to spare the disk the CSV exports), then transform, validate, train "
      f"and report with their defaults, each under `/usr/bin/time`. Machine: {cores} cores, {cpu}, "
      f"{mem:,} MiB of memory, Linux {platform.release()}; shared and noisy.\n")
print("Seconds and peak MiB (resident) per stage:\n")
print("| rows per table | " + " | ".join(stages) + " | data stages + train + report | disk |")
print("|---|" + "---|" * (len(stages) + 2))
for n in curve:
    t = runs[n]
    work_s = sum(t[s][0] for s in stages[1:])
    disk = open(f"{work}/disk-{n}").read().strip()
    print(f"| {n:,} | " + " | ".join(f"{t[s][0]:.1f} s, {t[s][1]:,}" for s in stages)
          + f" | {work_s:.1f} s | {int(disk):,} MiB |")
print()
print(f"Cores busy on average, of {cores} (CPU-seconds of every thread / wall seconds; CPU-seconds in parentheses):\n")
print("| rows per table | " + " | ".join(stages) + " |")
print("|---|" + "---|" * len(stages))
for n in curve:
    print(f"| {n:,} | " + " | ".join(f"{used[n][s] / max(runs[n][s][0], 0.01):.2f} ({used[n][s]:.1f})" for s in stages) + " |")
print()
worst = max((runs[n][s][1], s, n) for n in curve for s in stages)
verdict = "yes" if worst[0] < limit else "**no**"
print(f"Every stage under {limit:,} MiB at every size: {verdict} (largest: {worst[1]} at {worst[2]:,} rows, "
      f"{worst[0]:,} MiB).\n")
if len(curve) > 1:
    a, b = curve[0], curve[-1]
    print(f"Growth from {a:,} to {b:,} rows per table ({b / a:.0f}x the rows):\n")
    print("| stage | time | peak memory |")
    print("|---|---|---|")
    for s in stages:
        print(f"| {s} | {runs[b][s][0] / runs[a][s][0]:.1f}x | {runs[b][s][1] / runs[a][s][1]:.1f}x |")
    print()
print("Held-out accuracy at each size (train's defaults):\n")
print("| rows per table | model | rows | R2 | MAE | RMSE | mean baseline RMSE |")
print("|---|---|---|---|---|---|---|")
for n in curve:
    r = json.load(open(f"{work}/training-{n}.json"))
    for name, m in r["models"].items():
        c = m["candidates"][m["algorithm"]]["test"]
        base = m["candidates"]["mean_baseline"]["test"]["rmse"]
        print(f"| {n:,} | {name} | {m.get('rows', '')} | {c['r2']:.4f} | {c['mae']:.4f} | {c['rmse']:.4f} | {base:.4f} |")
PY
cat "$OUT"
worst=$(cat "$WORK"/times-* | awk '{ if ($3 > m) m = $3 } END { print m + 0 }')
if ((worst >= LIMIT)); then
    echo "bench-scale: a stage peaked at $worst MiB, over the $LIMIT MiB target" >&2
    exit 1
fi
