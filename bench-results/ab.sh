#!/usr/bin/env bash
# A/B of two ringbus binaries on the same machine in the same run (issue #11: every change is
# measured against its baseline, never against numbers from another day). Measures the
# machine's limits first (fio O_DIRECT writes, iperf3 loopback), then alternates A and B for
# ROUNDS rounds of each workload, one fresh broker and data directory per run, and writes
# bench-results/ab-<date>-<commit>.md with medians, ratios to the limits and where the time
# went (broker and loadgen CPU per GiB moved, disk busy %, context switches per message).
#
# Workloads (closed loop unless said, acks=1, 1 KiB messages, broker on BROKER_CORES, loadgen on
# LOADGEN_CORES, one producer and one tailing consumer):
#   small   16 partitions, 16 KiB batches, linger 5 ms (run.sh's max-acks1 shape)
#   large   1 partition, 1 MiB batches, linger 1 ms (issue #11's large-batch workload)
#   open    open loop at OPEN_RATE msg/s, 16 partitions, 16 KiB batches, linger 5 ms: the
#           latencies (publish and end-to-end p99) and the CPU per GiB at a moderate rate
#
# Usage: bench-results/ab.sh A_BINARY B_BINARY
# Environment (defaults in brackets): ROUNDS [3], DURATION [15] s, WARMUP [3] s,
# WORKLOADS [small large open], OPEN_RATE [50000], LIMIT_SECONDS [10], BROKER_CORES [0], LOADGEN_CORES [1],
# DATA_DIR [/var/tmp], PORT [29492], A_NAME [A], B_NAME [B].
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
invocation="$(printf '%q ' "$0" "$@")"
[[ $# -eq 2 ]] || { echo "usage: $0 A_BINARY B_BINARY" >&2; exit 2; }
bin_a=$(realpath "$1")
bin_b=$(realpath "$2")
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
WORKLOADS=${WORKLOADS:-small large open}
OPEN_RATE=${OPEN_RATE:-50000}
LIMIT_SECONDS=${LIMIT_SECONDS:-10}
BROKER_CORES=${BROKER_CORES:-0}
LOADGEN_CORES=${LOADGEN_CORES:-1}
DATA_DIR=${DATA_DIR:-/var/tmp}
PORT=${PORT:-29492}
A_NAME=${A_NAME:-A}
B_NAME=${B_NAME:-B}
for var in ROUNDS DURATION WARMUP WORKLOADS OPEN_RATE LIMIT_SECONDS BROKER_CORES LOADGEN_CORES DATA_DIR PORT A_NAME B_NAME; do
    invocation="$var=$(printf '%q' "${!var}") $invocation"
done

log() { printf '[ab %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
if ! command -v fio >/dev/null || ! command -v iperf3 >/dev/null || [[ ! -x /usr/bin/time ]]; then
    log "installing fio and iperf3"
    apt-get update -qq && apt-get install -y -qq fio iperf3 time >/dev/null
fi

commit=$(git rev-parse --short HEAD)
[[ -z "$(git status --porcelain --untracked-files=no)" ]] || commit="$commit-dirty"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
raw="bench-results/raw/ab-$stamp-$commit"
report="bench-results/ab-$stamp-$commit.md"
mkdir -p "$raw"
scratch=$(mktemp -d "$DATA_DIR/ringbus-ab.XXXXXX")
broker_pid=""
cleanup() {
    [[ -z "$broker_pid" ]] || kill -9 "$broker_pid" 2>/dev/null || true
    rm -rf "$scratch"
}
trap cleanup EXIT
ps -eo comm | grep -Eq '^(cargo|rustc|cc1|ld)$' && log "warning: something is compiling: figures will be worse"
ps -eo pid,comm,args | awk '$2 ~ /^(cargo|rustc|cc1|ld|ringbus)/' >"$raw/busy-before.txt" || true

# --- Limits, in this run --------------------------------------------------------------------
if [[ "$LIMIT_SECONDS" -gt 0 ]]; then
    log "fio: O_DIRECT writes 1 MiB qd4 and 64 KiB qd4 (${LIMIT_SECONDS} s each)"
    for job in "write-1m-qd4 --bs=1m" "write-64k-qd4 --bs=64k"; do
        set -- $job
        fio --name="$1" --directory="$scratch" --ioengine=io_uring --direct=1 --rw=write \
            "$2" --iodepth=4 --size=2g --runtime="$LIMIT_SECONDS" --time_based \
            --output-format=json >"$raw/fio-$1.json"
        rm -f "$scratch/$1"*
    done
    log "iperf3: loopback, 1 stream"
    iperf3 -s -1 -D -p 5399 >/dev/null
    sleep 1
    iperf3 -c 127.0.0.1 -p 5399 -t "$LIMIT_SECONDS" -J >"$raw/iperf3.json"
fi

# --- Runs -------------------------------------------------------------------------------------
disk=$(df --output=source "$DATA_DIR" | tail -1 | xargs basename)
disk_busy_ms() { awk -v d="$disk" '$3 == d { print $13 }' /proc/diskstats; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
switches() {
    awk '/ctxt_switches/ { s += $2 } END { print s }' /proc/"$1"/task/*/status 2>/dev/null || echo 0
}

run_one() {
    local label=$1 bin=$2 workload=$3 round=$4
    local name="$workload-$label-$round" data="$scratch/data"
    rm -rf "$data"
    # No Kafka listener: the runs measure the ringbus wire, and must not take 9092 (binaries
    # from before the Kafka listener have no such option).
    # shellcheck disable=SC2046 # the option is two words or none
    taskset -c "$BROKER_CORES" "$bin" serve --listen "127.0.0.1:$PORT" --cores "$BROKER_CORES" \
        --data-dir "$data" $("$bin" serve --help | grep -q -- --kafka-listen && echo --kafka-listen none) \
        >"$raw/$name-broker.log" 2>&1 &
    broker_pid=$!
    for _ in $(seq 100); do grep -q "listening on" "$raw/$name-broker.log" && break; sleep 0.1; done
    local shape
    case $workload in
        small) shape=(--partitions 16 --batch-bytes 16384 --linger-ms 5) ;;
        large) shape=(--partitions 1 --batch-bytes 1048576 --linger-ms 1) ;;
        open) shape=(--partitions 16 --batch-bytes 16384 --linger-ms 5 --rate "$OPEN_RATE") ;;
        *) log "unknown workload $workload"; exit 2 ;;
    esac
    local b0 d0 s0 t0 b1 d1 s1 t1 status=0
    b0=$(ticks "$broker_pid"); d0=$(disk_busy_ms); s0=$(switches "$broker_pid"); t0=$(date +%s.%N)
    # loadgen's own CPU comes from `time`'s user+sys, the broker's from /proc.
    /usr/bin/time -f '{"loadgen_cpu_s": %U + %S}' -o "$raw/$name-loadgen-time.txt" \
        taskset -c "$LOADGEN_CORES" "$bin" loadgen --broker "127.0.0.1:$PORT" \
        --cores "$LOADGEN_CORES" --topic ab --create-topic "${shape[@]}" --producers 1 \
        --consumers 1 --acks 1 --message-size 1024 --duration "$DURATION" --warmup "$WARMUP" \
        --json "$raw/$name.json" >"$raw/$name-table.txt" 2>"$raw/$name-live.log" || status=$?
    b1=$(ticks "$broker_pid"); d1=$(disk_busy_ms); s1=$(switches "$broker_pid"); t1=$(date +%s.%N)
    kill -TERM "$broker_pid"; wait "$broker_pid" || true; broker_pid=""
    echo "{\"broker_cpu_s\": $(awk "BEGIN{print ($b1-$b0)/$(getconf CLK_TCK)}"), \"wall_s\": $(awk "BEGIN{print $t1-$t0}"), \"disk_busy_ms\": $((d1 - d0)), \"broker_switches\": $((s1 - s0)), \"loadgen_exit\": $status}" >"$raw/$name-cost.json"
    log "$name: exit $status"
}

for workload in $WORKLOADS; do
    for round in $(seq "$ROUNDS"); do
        # Alternate the order so neither binary always runs first.
        if (( round % 2 )); then order=("$A_NAME:$bin_a" "$B_NAME:$bin_b"); else order=("$B_NAME:$bin_b" "$A_NAME:$bin_a"); fi
        for entry in "${order[@]}"; do
            run_one "${entry%%:*}" "${entry#*:}" "$workload" "$round"
        done
    done
done

python3 - "$raw" "$report" "$invocation" "$commit" "$A_NAME" "$B_NAME" "$bin_a" "$bin_b" "$WORKLOADS" "$ROUNDS" <<'EOF'
import json, pathlib, re, statistics, subprocess, sys
raw, report, invocation, commit, a, b, bin_a, bin_b, workloads, rounds = sys.argv[1:]
raw = pathlib.Path(raw)
def load(path):
    try: return json.loads(path.read_text())
    except Exception: return None
limits = {}
for job in ("write-1m-qd4", "write-64k-qd4"):
    j = load(raw / f"fio-{job}.json")
    if j: limits[job] = j["jobs"][0]["write"]["bw"] / 1024  # KiB/s -> MiB/s
ip = load(raw / "iperf3.json")
if ip: limits["iperf3"] = ip["end"]["sum_received"]["bits_per_second"] / 8 / 2**20
produce_limit = min([v for k, v in limits.items() if k in ("write-1m-qd4", "iperf3")] or [0])
lines = [f"# A/B {a} vs {b} ({commit})", "",
         f"Command: `{invocation}`", "",
         f"- {a}: `{bin_a}`", f"- {b}: `{bin_b}`",
         "- Machine: " + subprocess.run(["sh", "-c", "nproc; uname -r; grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.replace("\n", " ").strip(),
         "", "## Limits in this run", ""]
for k, v in limits.items(): lines.append(f"- {k}: {v:,.0f} MiB/s")
lines.append(f"- produce limit (min of fio 1 MiB qd4 write and iperf3): {produce_limit:,.0f} MiB/s")
for workload in workloads.split():
    lines += ["", f"## {workload}", "",
              "| binary | round | produce MiB/s | consume MiB/s | x limit | broker CPU s/GiB | loadgen CPU s/GiB | disk busy % | broker switches/msg | publish p99 ms | e2e p99 ms | errors/lost/dup |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    summary = {}
    for label in (a, b):
        for r in range(1, int(rounds) + 1):
            name = f"{workload}-{label}-{r}"
            j = load(raw / f"{name}.json"); c = load(raw / f"{name}-cost.json")
            t = (raw / f"{name}-loadgen-time.txt")
            lg = None
            if t.exists():
                m = re.search(r'"loadgen_cpu_s": ([0-9.]+) \+ ([0-9.]+)', t.read_text())
                if m: lg = float(m.group(1)) + float(m.group(2))
            if not j or not c: lines.append(f"| {label} | {r} | failed | | | | | | | | | |"); continue
            p, q = j["produce"]["mib_per_s"], j["consume"]["mib_per_s"]
            moved_gib = (j["produce"]["bytes"] + j["consume"]["bytes"]) / 2**30 * (c["wall_s"] / max(j["measured_s"], 1e-9))
            cpu_gib = c["broker_cpu_s"] / moved_gib if moved_gib else 0
            lg_gib = (lg / moved_gib) if (lg is not None and moved_gib) else float("nan")
            busy = 100 * c["disk_busy_ms"] / 1000 / c["wall_s"]
            msgs = (j["produce"]["messages"] + j["consume"]["messages"]) * (c["wall_s"] / max(j["measured_s"], 1e-9))
            sw = c["broker_switches"] / msgs if msgs else 0
            p99 = j["produce"]["latency_us"].get("p99", 0) / 1000
            e99 = j["e2e_latency_us"].get("p99", 0) / 1000
            ratio = p / produce_limit if produce_limit else 0
            summary.setdefault(label, []).append((p, q, ratio, cpu_gib, lg_gib))
            lines.append(f"| {label} | {r} | {p:,.0f} | {q:,.0f} | {ratio:.2f} | {cpu_gib:.2f} | {lg_gib:.2f} | {busy:.0f} | {sw:.3f} | {p99:.1f} | {e99:.1f} | {j['errors']}/{j['lost']}/{j['duplicates']} |")
    lines += ["", "Medians:", ""]
    med = {}
    for label, rows in summary.items():
        cols = list(zip(*rows))
        med[label] = [statistics.median(col) for col in cols]
        p, q, ratio, cpu, lg = med[label]
        lines.append(f"- {label}: produce {p:,.0f} MiB/s ({ratio:.2f} of the limit), consume {q:,.0f} MiB/s ({q / p if p else 0:.2f} of produce), broker {cpu:.2f} CPU-s/GiB, loadgen {lg:.2f} CPU-s/GiB")
    if a in med and b in med and med[a][0]:
        lines.append(f"- {b} / {a}: produce {med[b][0] / med[a][0]:.3f}, broker CPU per GiB {med[b][3] / med[a][3] if med[a][3] else 0:.3f}")
lines += ["", "Moved GiB counts produce + consume bytes over the whole run (warm-up and drain included, as the CPU is). Disk busy is /proc/diskstats io_ticks over the run.", f"Raw files: `{raw}`."]
pathlib.Path(report).write_text("\n".join(lines) + "\n")
print(report)
EOF
