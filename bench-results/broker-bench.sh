#!/usr/bin/env bash
# Broker benchmark (issue #3's performance section): measures this machine's limits (fio
# O_DIRECT sequential write 64 KiB qd4 on the data directory's filesystem, iperf3 loopback single
# stream) and then, in the same run, three max-throughput workloads of `ringbus loadgen` against
# a broker it starts itself: the broker pinned to core BROKER_CORE, loadgen to LOADGEN_CORE,
# 1 KiB messages, acks=1, closed loop (labelled so: latencies include queueing in the producer
# buffer), DURATION s measured after WARMUP s:
#   (a) 16 partitions, 1 producer, 1 consumer
#   (b) 1,000 partitions, 1 producer, 1 consumer
#   (c) 16 partitions, 100 producers (100 connections), 1 consumer
# plus the broker's CPU seconds (utime+stime from /proc/<pid>/stat, sampled inside the measured
# window) per GiB moved (produced + consumed bytes).
# Writes bench-results/broker-<UTC stamp>-<commit>.md and the raw JSON and logs under
# bench-results/raw/broker-<UTC stamp>-<commit>/.
#
# Environment (defaults in brackets):
#   DATA_DIR      parent of the scratch directory; ext4/XFS, not tmpfs   [/var/tmp]
#   DURATION      measured seconds per workload                          [20]
#   WARMUP        warm-up seconds per workload                           [5]
#   LIMIT_SECONDS runtime of fio and of iperf3                           [10]
#   BROKER_CORE   the broker's core                                      [0]
#   LOADGEN_CORE  loadgen's core                                         [1]
#   PORT          the broker's port on 127.0.0.1                         [29292]
#   CARGO_TARGET_DIR  passed through to cargo
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
invocation="$(printf '%q ' "$0" "$@")"
DATA_DIR=${DATA_DIR:-/var/tmp}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-5}
LIMIT_SECONDS=${LIMIT_SECONDS:-10}
BROKER_CORE=${BROKER_CORE:-0}
LOADGEN_CORE=${LOADGEN_CORE:-1}
PORT=${PORT:-29292}
for var in DATA_DIR DURATION WARMUP LIMIT_SECONDS BROKER_CORE LOADGEN_CORE PORT CARGO_TARGET_DIR; do
    if [[ -n "${!var:-}" ]]; then
        invocation="$var=$(printf '%q' "${!var}") $invocation"
    fi
done

log() { printf '[broker-bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- Tools -------------------------------------------------------------------------------
if ! command -v fio >/dev/null 2>&1 || ! command -v iperf3 >/dev/null 2>&1; then
    log "installing fio and iperf3"
    apt-get update -qq && apt-get install -y -qq fio iperf3 >/dev/null
fi
command -v python3 >/dev/null 2>&1 || die "python3 is required to read the JSON results"

log "building the release binary"
cargo build --release -p broker >&2
target_dir=${CARGO_TARGET_DIR:-$repo/target}
ringbus="$target_dir/release/ringbus"
[[ -x "$ringbus" ]] || die "no $ringbus"

commit=$(git rev-parse --short HEAD)
if [[ -n "$(git status --porcelain)" ]]; then
    commit="$commit-dirty"
fi
stamp=$(date -u +%Y%m%dT%H%M%SZ)
stem="broker-$stamp-$commit"
raw="bench-results/raw/$stem"
report="bench-results/$stem.md"
mkdir -p "$raw"
scratch=$(mktemp -d "$DATA_DIR/ringbus-bench.XXXXXX")
broker_pid=""
cleanup() {
    if [[ -n "$broker_pid" ]]; then kill "$broker_pid" 2>/dev/null || true; fi
    rm -rf "$scratch"
}
trap cleanup EXIT

# Anything else compiling makes every figure worse: say so in the report.
busy=$(ps -eo pid,comm,args | awk '$2 ~ /^(cargo|rustc|cc1|ld)$/' | grep -v broker-bench || true)
printf '%s\n' "${busy:-none}" >"$raw/busy-before.txt"

# --- Limits ------------------------------------------------------------------------------
log "fio: O_DIRECT sequential write, 64 KiB, qd4, ${LIMIT_SECONDS} s, on $scratch"
fio --name=seqwrite --directory="$scratch" --rw=write --bs=64k --iodepth=4 \
    --ioengine=io_uring --direct=1 --size=2g --runtime="$LIMIT_SECONDS" --time_based \
    --output-format=json >"$raw/fio-write-64k-qd4.json"
rm -f "$scratch"/seqwrite*

log "iperf3: loopback, 1 stream, ${LIMIT_SECONDS} s"
iperf3 -s -1 -D -p 5299 >/dev/null
sleep 1
iperf3 -c 127.0.0.1 -p 5299 -t "$LIMIT_SECONDS" -J >"$raw/iperf3-loopback.json"

# --- Workloads ---------------------------------------------------------------------------
clk_tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_workload() {
    local name=$1 partitions=$2 producers=$3
    local data="$scratch/data-$name"
    mkdir -p "$data"
    log "workload $name: $partitions partitions, $producers producers"
    "$ringbus" serve --listen "127.0.0.1:$PORT" --cores "$BROKER_CORE" --data-dir "$data" \
        >"$raw/$name-broker.log" 2>&1 &
    broker_pid=$!
    for _ in $(seq 100); do
        grep -q "listening on" "$raw/$name-broker.log" && break
        sleep 0.1
    done
    grep -q "listening on" "$raw/$name-broker.log" || die "the broker did not start"
    local command=("$ringbus" loadgen --broker "127.0.0.1:$PORT" --topic "bench-$name"
        --create-topic --partitions "$partitions" --producers "$producers" --consumers 1
        --message-size 1024 --acks 1 --rate 0 --duration "$DURATION" --warmup "$WARMUP"
        --cores "$LOADGEN_CORE" --json "$raw/$name.json")
    printf '%q ' "${command[@]}" >"$raw/$name-command.txt"
    "${command[@]}" >"$raw/$name-table.txt" 2>"$raw/$name-live.log" &
    local loadgen_pid=$!
    # Broker CPU inside the measured window (setup takes well under 2 s).
    sleep $((WARMUP + 2))
    local t0 c0 t1 c1
    t0=$(date +%s.%N); c0=$(cpu_ticks "$broker_pid")
    sleep $((DURATION - 4))
    t1=$(date +%s.%N); c1=$(cpu_ticks "$broker_pid")
    local status=0
    wait "$loadgen_pid" || status=$?
    echo "{\"cpu_s\": $(python3 -c "print(($c1 - $c0) / $clk_tck)"), \"wall_s\": $(python3 -c "print($t1 - $t0)"), \"loadgen_exit\": $status}" \
        >"$raw/$name-broker-cpu.json"
    kill -TERM "$broker_pid"
    wait "$broker_pid" || true
    broker_pid=""
    rm -rf "$data"
}

run_workload a 16 1
run_workload b 1000 1
run_workload c 16 100

ps -eo pid,comm,args | awk '$2 ~ /^(cargo|rustc|cc1|ld)$/' >"$raw/busy-after.txt" || true

# --- Report ------------------------------------------------------------------------------
python3 - "$raw" "$report" "$commit" "$invocation" "$stamp" <<'PY'
import json, os, platform, subprocess, sys
raw, report, commit, invocation, stamp = sys.argv[1:]
def load(name):
    with open(os.path.join(raw, name)) as f:
        return json.load(f)
def text(name):
    with open(os.path.join(raw, name)) as f:
        return f.read().strip()
MiB = 1 << 20
fio = load("fio-write-64k-qd4.json")
fio_mib = fio["jobs"][0]["write"]["bw_bytes"] / MiB
iperf = load("iperf3-loopback.json")
iperf_mib = iperf["end"]["sum_received"]["bits_per_second"] / 8 / MiB
produce_limit = min(fio_mib, iperf_mib)
cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem_gib = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) / (1 << 20)
names = {"a": "(a) 16 partitions, 1 producer", "b": "(b) 1,000 partitions, 1 producer",
         "c": "(c) 16 partitions, 100 producers (100 connections)"}
results = {k: load(f"{k}.json") for k in names}
cpu = {k: load(f"{k}-broker-cpu.json") for k in names}
out = []
w = out.append
w(f"# Broker benchmark {stamp}, commit {commit}\n")
w("Produced by `bench-results/broker-bench.sh`; every figure below comes from this one run.\n")
w("## Setup\n")
w(f"- Command: `{invocation.strip()}`")
w(f"- Commit: `{commit}`")
w(f"- Machine: {os.cpu_count()} vCPU {cpu_model}, {mem_gib:.1f} GiB memory")
w(f"- Kernel: `{platform.release()}`")
w(f"- Other compilers running before: `{text('busy-before.txt') or 'none'}`; after: `{text('busy-after.txt') or 'none'}`")
w("- Broker: `ringbus serve --cores 0` (one shard); loadgen: `--cores 1`; 1 KiB messages, acks=1, "
  "batch 16 KiB, linger 5 ms, 1 consumer, **closed loop** (max throughput: the latencies include "
  "queueing in the producers' buffers, 32 MiB shared over the producers and at least 1 MiB each; they are not a latency result)")
for k in names:
    w(f"- {names[k]}: `{text(f'{k}-command.txt')}`")
w("\n## Limits measured in this run\n")
w("| limit | MiB/s |\n|---|---:|")
w(f"| fio O_DIRECT seq write 64 KiB qd4 (io_uring, {len(fio['jobs'])} job, data dir's filesystem) | {fio_mib:,.0f} |")
w(f"| iperf3 loopback, 1 stream | {iperf_mib:,.0f} |")
w(f"\nProduce is compared with min(fio, iperf3) = {produce_limit:,.0f} MiB/s; consume with iperf3.\n")
w("## Results\n")
w("| workload | produce msg/s | produce MiB/s | / limit | consume msg/s | consume MiB/s | / iperf3 | vs (a) produce | broker CPU s per GiB moved |")
w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
base = results["a"]["produce"]["msgs_per_s"] or 1
for k in names:
    r = results[k]
    p, c = r["produce"], r["consume"]
    moved_gib_s = (p["mib_per_s"] + c["mib_per_s"]) / 1024
    cpu_rate = cpu[k]["cpu_s"] / cpu[k]["wall_s"]
    per_gib = cpu_rate / moved_gib_s if moved_gib_s else float("nan")
    w(f"| {names[k]} | {p['msgs_per_s']:,.0f} | {p['mib_per_s']:,.1f} | {p['mib_per_s'] / produce_limit:.3f} | "
      f"{c['msgs_per_s']:,.0f} | {c['mib_per_s']:,.1f} | {c['mib_per_s'] / iperf_mib:.3f} | "
      f"{p['msgs_per_s'] / base:.2f} | {per_gib:.2f} ({cpu_rate:.2f} CPU s/s) |")
w("\nTarget: (b) and (c) within 20% of (a) (ratio 0.80 or more).\n")
w("| workload | publish p50 / p99 / p99.9 / max (us) | e2e p50 / p99 / p99.9 / max (us) | errors | lost | duplicates |")
w("|---|---|---|---:|---:|---:|")
for k in names:
    r = results[k]
    l, e = r["produce"]["latency_us"], r["e2e_latency_us"]
    w(f"| {names[k]} | {l['p50']:,} / {l['p99']:,} / {l['p999']:,} / {l['max']:,} | "
      f"{e['p50']:,} / {e['p99']:,} / {e['p999']:,} / {e['max']:,} | {r['errors']} | {r['lost']} | {r['duplicates']} |")
w("\n## Raw data\n")
w(f"Under `{raw}/`: fio and iperf3 JSON, per workload the loadgen JSON, table, live log, "
  "command, broker log and broker CPU sample.\n")
for k in names:
    w(f"### {names[k]}\n\n```json\n{text(f'{k}.json')}\n```\n")
    w(f"```json\n{text(f'{k}-broker-cpu.json')}\n```\n")
with open(report, "w") as f:
    f.write("\n".join(out) + "\n")
print(report)
PY
log "report: $report"
