#!/usr/bin/env bash
# The standard broker benchmark (issues #3 and #4): measures this machine's limits first, then
# runs the standard workloads of `ringbus loadgen` against a broker it starts itself (a fresh
# data directory per workload), and writes a dated markdown report with every figure next to
# its limit, plus the raw JSON, histograms (.hgrm), plots (.svg) and logs.
#
# Limits (fio on the data directory's filesystem, O_DIRECT, io_uring; iperf3 on loopback):
#   seq write 64 KiB qd4, seq read 64 KiB qd4, write+fdatasync 4 KiB qd1 latency,
#   TCP loopback 1 stream.
# Workloads (1 KiB messages, batch 16 KiB, linger 5 ms; broker on BROKER_CORES, load on
# LOADGEN_CORES):
#   max-acks1        16 partitions, 1 producer, 1 consumer, acks=1, --find-max
#   max-acksall      the same with acks=all
#   latency-50pct    open loop at 50% of max-acks1's sustained rate, acks=1 (also: broker CPU)
#   omb-100p         100 partitions, 4 producers, 4 consumers, fixed OMB_RATE msg/s, acks=1
#   catch-up         write BACKLOG_MIB (more than the cache), then read it from the start
#   partitions-1000  1,000 partitions, otherwise max-acks1
#   connections-100  100 producers (100 connections), otherwise max-acks1
#   large-batch      1 partition, 1 MiB batches, linger 1 ms, otherwise max-acks1 (issue #11)
#   idempotence-ab   (only when named in ONLY) closed loop, 16 partitions, acks AB_ACKS, the
#                    producer idempotent and not, alternating for AB_ROUNDS rounds: the cost
#                    of the broker's duplicate checks and the client's stamping
#
# Environment (defaults in brackets):
#   DATA_DIR       parent of the scratch directory; ext4/XFS, not tmpfs        [/var/tmp]
#   DURATION       measured seconds per run (per trial with --find-max)        [10]
#   WARMUP         warm-up seconds per run                                     [3]
#   LIMIT_SECONDS  runtime of each fio job and of iperf3                        [10]
#   BROKER_CORES   the broker's cores (one shard each)                         [0]
#   LOADGEN_CORES  loadgen's cores                                             [1]
#   OMB_RATE       msgs/s of omb-100p (capped at half of max-acks1's rate)     [50000]
#   BACKLOG_MIB    catch-up backlog                                            [1024]
#   ONLY           space-separated workload names to run                       [all]
#   PORT           the broker's port on 127.0.0.1                             [29292]
#   AB_ROUNDS      rounds of idempotence-ab                                    [3]
#   AB_ACKS        acks of idempotence-ab                                      [1]
#   RQ_AFFINITY    the data disk's queue/rq_affinity during the run, restored   [2]
#                  after it; `keep` leaves it. 2 runs each write's completion on
#                  the core that submitted it (the broker's), not on the core that
#                  took the disk's one interrupt (tuning.md, "Disk IRQ affinity")
#   CARGO_TARGET_DIR  passed through to cargo
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
invocation="$(printf '%q ' "$0" "$@")"
DATA_DIR=${DATA_DIR:-/var/tmp}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
LIMIT_SECONDS=${LIMIT_SECONDS:-10}
BROKER_CORES=${BROKER_CORES:-0}
LOADGEN_CORES=${LOADGEN_CORES:-1}
OMB_RATE=${OMB_RATE:-50000}
BACKLOG_MIB=${BACKLOG_MIB:-1024}
ONLY=${ONLY:-max-acks1 max-acksall latency-50pct omb-100p catch-up partitions-1000 connections-100 large-batch}
PORT=${PORT:-29292}
AB_ROUNDS=${AB_ROUNDS:-3}
AB_ACKS=${AB_ACKS:-1}
RQ_AFFINITY=${RQ_AFFINITY:-2}
for var in DATA_DIR DURATION WARMUP LIMIT_SECONDS BROKER_CORES LOADGEN_CORES OMB_RATE BACKLOG_MIB PORT AB_ROUNDS AB_ACKS RQ_AFFINITY CARGO_TARGET_DIR ONLY; do
    if [[ -n "${!var:-}" ]]; then
        invocation="$var=$(printf '%q' "${!var}") $invocation"
    fi
done

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- Tools -------------------------------------------------------------------------------
if ! command -v fio >/dev/null 2>&1 || ! command -v iperf3 >/dev/null 2>&1; then
    log "installing fio and iperf3"
    apt-get update -qq && apt-get install -y -qq fio iperf3 >/dev/null
fi
command -v python3 >/dev/null 2>&1 || die "python3 is required to read the JSON results"

log "building the release binary"
cargo build --release -p cli --bin ringbus >&2
target_dir=${CARGO_TARGET_DIR:-$repo/target}
ringbus="$target_dir/release/ringbus"
[[ -x "$ringbus" ]] || die "no $ringbus"

commit=$(git rev-parse --short HEAD)
if [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
    commit="$commit-dirty"
fi
stamp=$(date -u +%Y%m%dT%H%M%SZ)
stem="broker-$stamp-$commit"
raw="bench-results/raw/$stem"
report="bench-results/$stem.md"
mkdir -p "$raw"
scratch=$(mktemp -d "$DATA_DIR/ringbus-bench.XXXXXX")
[[ "$(stat -f -c %T "$scratch")" != tmpfs ]] || die "$DATA_DIR is tmpfs: O_DIRECT needs a disk filesystem"
broker_pid=""
broker_data=""
# The data disk's request queue (the whole disk's, for a partition): its rq_affinity is set for
# the run and put back after it.
disk=$(bench-results/disk-of.sh "$scratch" || echo "?")
rq_file="/sys/block/$disk/queue/rq_affinity"
rq_before=$(cat "$rq_file" 2>/dev/null || echo "?")
rq_restore=""
cleanup() {
    if [[ -n "$broker_pid" ]]; then kill "$broker_pid" 2>/dev/null || true; fi
    if [[ -n "$rq_restore" ]]; then echo "$rq_restore" >"$rq_file" 2>/dev/null || true; fi
    rm -rf "$scratch"
}
trap cleanup EXIT
if [[ "$RQ_AFFINITY" != keep && "$rq_before" != "?" && "$rq_before" != "$RQ_AFFINITY" ]]; then
    if echo "$RQ_AFFINITY" >"$rq_file" 2>/dev/null; then
        rq_restore=$rq_before
        log "rq_affinity of $disk: $rq_before -> $RQ_AFFINITY for the run"
    else
        log "rq_affinity of $disk: could not set $RQ_AFFINITY (not root?), left at $rq_before"
    fi
fi
if [[ "$RQ_AFFINITY" != keep && "$rq_before" == "?" ]]; then
    log "rq_affinity: no request queue found for $scratch (disk '$disk'), left as it is"
fi
rq_during=$(cat "$rq_file" 2>/dev/null || echo "?")
printf 'disk %s\nscheduler %s\nrq_affinity before %s, during the run %s\n' "$disk" \
    "$(cat "/sys/block/$disk/queue/scheduler" 2>/dev/null || echo '?')" "$rq_before" "$rq_during" \
    >"$raw/disk-settings.txt"

# Anything else compiling makes every figure worse: say so in the report.
busy() { ps -eo pid,comm,args | awk '$2 ~ /^(cargo|rustc|cc1|ld)$/' | grep -v "bench-results/run.sh" || true; }
busy >"$raw/busy-before.txt"
git status --porcelain >"$raw/git-status.txt"

# --- Limits ------------------------------------------------------------------------------
fio_job() {
    local name=$1; shift
    log "fio $name (${LIMIT_SECONDS} s)"
    fio --name="$name" --directory="$scratch" --ioengine=io_uring --direct=1 \
        --runtime="$LIMIT_SECONDS" --time_based --output-format=json "$@" >"$raw/fio-$name.json"
}
fio_job write-64k-qd4 --rw=write --bs=64k --iodepth=4 --size=2g
fio_job read-64k-qd4 --rw=read --bs=64k --iodepth=4 --size=2g
rm -f "$scratch"/write-64k-qd4* "$scratch"/read-64k-qd4*
fio_job write-sync-4k-qd1 --rw=write --bs=4k --iodepth=1 --fdatasync=1 --size=256m
rm -f "$scratch"/write-sync-4k-qd1*

log "iperf3: loopback, 1 stream, ${LIMIT_SECONDS} s"
iperf3 -s -1 -D -p 5299 >/dev/null
sleep 1
iperf3 -c 127.0.0.1 -p 5299 -t "$LIMIT_SECONDS" -J >"$raw/iperf3-loopback.json"

# --- Workloads ---------------------------------------------------------------------------
clk_tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# One line per thread of process $1: name, CPU ticks (utime + stime), context switches.
threads() {
    local task
    for task in /proc/"$1"/task/*; do
        printf '%s %s %s\n' "$(tr ' ' '_' <"$task/comm")" \
            "$(awk '{print $14 + $15}' "$task/stat" 2>/dev/null || echo 0)" \
            "$(awk '/ctxt_switches/ { s += $2 } END { print s + 0 }' "$task/status" 2>/dev/null || echo 0)"
    done
}
# The data directory's disk in /proc/diskstats: ms busy (io_ticks) and weighted ms in queue.
data_disk=$(basename "$(df --output=source "$DATA_DIR" | tail -1)")
disk_stats() { awk -v d="$data_disk" '$3 == d { print $13, $14 }' /proc/diskstats; }
# Ticks the hypervisor ran something else while this VM's CPUs wanted to run (steal, all CPUs):
# these shared VMs drift by 2x between runs, and steal says when it is the neighbours.
steal_ticks() { awk '$1 == "cpu" { print $9 }' /proc/stat; }

start_broker() {
    local name=$1
    local data="$scratch/data-$name"
    rm -rf "$data"
    mkdir -p "$data"
    broker_data=$data
    # No Kafka listener: the runs measure the ringbus wire, and must not take 9092 (binaries
    # from before the Kafka listener have no such option).
    # shellcheck disable=SC2046 # the option is two words or none
    "$ringbus" serve --listen "127.0.0.1:$PORT" --cores "$BROKER_CORES" --data-dir "$data" \
        $("$ringbus" serve --help | grep -q -- --kafka-listen && echo --kafka-listen none) \
        >"$raw/$name-broker.log" 2>&1 &
    broker_pid=$!
    for _ in $(seq 100); do
        grep -qs "listening on" "$raw/$name-broker.log" && return 0
        sleep 0.1
    done
    die "the broker did not start for $name"
}

stop_broker() {
    kill -TERM "$broker_pid"
    wait "$broker_pid" || true
    broker_pid=""
    # A find-max run writes tens of GiB; keeping every workload's log filled the disk of a
    # shared VM mid-run (2026-12-06, max-acksall: "No space left on device").
    rm -rf "$broker_data"
}

# loadgen NAME [args...]: one loadgen run whose files are $raw/NAME.*; records the broker's
# CPU over the run (the whole run, set-up and drain included) in NAME-broker-cpu.json.
loadgen() {
    local name=$1; shift
    local command=("$ringbus" loadgen --broker "127.0.0.1:$PORT" --cores "$LOADGEN_CORES"
        --message-size 1024 --batch-bytes "${LG_BATCH:-16384}" --linger-ms "${LG_LINGER:-5}"
        --warmup "${LG_WARMUP:-$WARMUP}"
        --json "$raw/$name.json" --hgrm-dir "$raw/$name-hgrm" "$@")
    printf '%q ' "${command[@]}" >"$raw/$name-command.txt"
    log "$name: ${command[*]:1}"
    local t0 c0 t1 c1 status=0
    threads "$broker_pid" >"$raw/$name-threads-before.txt"; disk_stats >"$raw/$name-disk-before.txt"
    steal_ticks >"$raw/$name-steal-before.txt"
    t0=$(date +%s.%N); c0=$(cpu_ticks "$broker_pid")
    # loadgen's own CPU (user + sys) from `time`: on this machine it shares nothing with the
    # broker but the disk, and it must never be the bottleneck (issue #11).
    /usr/bin/time -f '%U %S' -o "$raw/$name-loadgen-time.txt" \
        "${command[@]}" >"$raw/$name-table.txt" 2>"$raw/$name-live.log" || status=$?
    t1=$(date +%s.%N); c1=$(cpu_ticks "$broker_pid")
    threads "$broker_pid" >"$raw/$name-threads-after.txt"; disk_stats >"$raw/$name-disk-after.txt"
    steal_ticks >"$raw/$name-steal-after.txt"
    echo "{\"cpu_s\": $(python3 -c "print(($c1 - $c0) / $clk_tck)"), \"wall_s\": $(python3 -c "print($t1 - $t0)"), \"loadgen_exit\": $status}" \
        >"$raw/$name-broker-cpu.json"
    [[ $status -eq 0 ]] || log "$name: loadgen exited $status (see $raw/$name-live.log)"
}

wants() { [[ " $ONLY " == *" $1 "* ]]; }

max_rate() {
    python3 -c "import json,sys; print(int(json.load(open(sys.argv[1]))['find_max']['max_sustained_rate']))" "$raw/$1.json" 2>/dev/null || echo 0
}

find_max_workload() {
    local name=$1 partitions=$2 producers=$3 acks=$4
    wants "$name" || return 0
    start_broker "$name"
    loadgen "$name" --topic "$name" --create-topic --partitions "$partitions" \
        --producers "$producers" --consumers 1 --acks "$acks" --find-max --duration "$DURATION"
    stop_broker
}

find_max_workload max-acks1 16 1 1
find_max_workload max-acksall 16 1 all

max_acks1=$(max_rate max-acks1)
if wants latency-50pct; then
    if [[ "$max_acks1" -gt 0 ]]; then
        start_broker latency-50pct
        loadgen latency-50pct --topic lat --create-topic --partitions 16 --producers 1 \
            --consumers 1 --acks 1 --rate $((max_acks1 / 2)) --duration "$((DURATION * 2))"
        stop_broker
    else
        log "latency-50pct: skipped, max-acks1 found no sustained rate"
    fi
fi

if wants omb-100p; then
    rate=$OMB_RATE
    if [[ "$max_acks1" -gt 0 && $((max_acks1 / 2)) -lt $rate ]]; then rate=$((max_acks1 / 2)); fi
    start_broker omb-100p
    loadgen omb-100p --topic omb --create-topic --partitions 100 --producers 4 --consumers 4 \
        --acks 1 --rate "$rate" --duration "$((DURATION * 2))"
    stop_broker
fi

if wants catch-up; then
    messages=$((BACKLOG_MIB * 1024))
    start_broker catch-up
    LG_WARMUP=0 loadgen catch-up-write --topic backlog --create-topic --partitions 16 --producers 1 \
        --consumers 0 --acks 1 --messages "$messages" --duration 3600
    # Reads start cold only for the part that fell out of the cache (256 MiB per shard).
    LG_WARMUP=0 loadgen catch-up --topic backlog --producers 0 --consumers 1 --from-earliest \
        --messages "$messages" --duration 3600
    stop_broker
fi

find_max_workload partitions-1000 1000 1 1
find_max_workload connections-100 16 100 1
LG_BATCH=1048576 LG_LINGER=1 find_max_workload large-batch 1 1 1

if wants idempotence-ab; then
    for round in $(seq "$AB_ROUNDS"); do
        for variant in on off; do
            name="idem-$variant-r$round"
            flags=()
            [[ $variant == off ]] && flags=(--no-idempotence)
            start_broker "$name"
            loadgen "$name" --topic idem --create-topic --partitions 16 --producers 1 \
                --consumers 1 --acks "$AB_ACKS" --rate 0 --duration "$DURATION" "${flags[@]}"
            stop_broker
        done
    done
fi

busy >"$raw/busy-after.txt"

# --- Report ------------------------------------------------------------------------------
python3 - "$raw" "$report" "$commit" "$invocation" "$stamp" "$BROKER_CORES" "$LOADGEN_CORES" <<'PY'
import json, os, platform, sys
raw, report, commit, invocation, stamp, broker_cores, loadgen_cores = sys.argv[1:]
def load(name):
    path = os.path.join(raw, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)
def text(name):
    path = os.path.join(raw, name)
    return open(path).read().strip() if os.path.exists(path) else ""
MiB = 1 << 20
fw = load("fio-write-64k-qd4.json")["jobs"][0]["write"]
fr = load("fio-read-64k-qd4.json")["jobs"][0]["read"]
fs = load("fio-write-sync-4k-qd1.json")["jobs"][0]
write_mib, read_mib = fw["bw_bytes"] / MiB, fr["bw_bytes"] / MiB
sync_pct = fs["sync"]["lat_ns"].get("percentile", {})
write_pct = fs["write"]["clat_ns"].get("percentile", {})
def pct(d, key):
    return d.get(key, 0) / 1000
sync_p50 = pct(write_pct, "50.000000") + pct(sync_pct, "50.000000")
sync_p99 = pct(write_pct, "99.000000") + pct(sync_pct, "99.000000")
iperf_mib = load("iperf3-loopback.json")["end"]["sum_received"]["bits_per_second"] / 8 / MiB
produce_limit = min(write_mib, iperf_mib)
cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem_gib = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) / (1 << 20)

out = []
w = out.append
w(f"# Broker benchmark {stamp}, commit {commit}\n")
w("Produced by `bench-results/run.sh`; every figure below comes from this one run, next to a limit "
  "measured in the same run.\n")
busy_before, busy_after = text("busy-before.txt"), text("busy-after.txt")
if busy_before or busy_after:
    w(f"**Warning: compilers were running (before: `{busy_before or 'none'}`; after: `{busy_after or 'none'}`). "
      "Figures are pessimistic; rerun on a quiet machine before quoting them.**\n")
w("## Setup\n")
w(f"- Command: `{invocation.strip()}`")
w(f"- Commit: `{commit}` (`git status` in the raw directory)")
w(f"- Machine: {os.cpu_count()} vCPU {cpu_model}, {mem_gib:.1f} GiB memory, kernel `{platform.release()}`")
w(f"- Data disk: {'; '.join(text('disk-settings.txt').splitlines())} (`RQ_AFFINITY`; tuning.md, "
  "\"Disk IRQ affinity\")")
w(f"- Broker: `ringbus serve --cores {broker_cores}`, default config (256 MiB cache per shard); "
  f"loadgen: `--cores {loadgen_cores}`. Messages 1 KiB, batch 16 KiB, linger 5 ms.")
w("- Max rates come from `--find-max` (OpenMessaging Benchmark style): a closed-loop trial, then "
  "open-loop trials; a rate counts as sustained when 97% of it was produced, the consumers consumed "
  "97% of that, and the p99 publish delay stayed under 100 ms. Latencies of a find-max workload are "
  "those of its best sustained trial (open loop, coordinated omission corrected).\n")
w("## Limits measured in this run\n")
w("| limit | value |\n|---|---:|")
w(f"| fio O_DIRECT seq write 64 KiB qd4 | {write_mib:,.0f} MiB/s |")
w(f"| fio O_DIRECT seq read 64 KiB qd4 | {read_mib:,.0f} MiB/s |")
w(f"| fio write+fdatasync 4 KiB qd1, p50 / p99 (write + sync percentiles) | {sync_p50:,.0f} / {sync_p99:,.0f} us |")
w(f"| iperf3 loopback, 1 stream | {iperf_mib:,.0f} MiB/s |")
w(f"\nProduce is compared with min(fio write, iperf3) = {produce_limit:,.0f} MiB/s; tailing consume with "
  "iperf3; the catch-up read with min(fio read, iperf3).\n")

names = [
    ("max-acks1", "16 partitions, 1 producer, acks=1, max sustained"),
    ("max-acksall", "16 partitions, 1 producer, acks=all, max sustained"),
    ("latency-50pct", "16 partitions, acks=1, open loop at 50% of max-acks1"),
    ("omb-100p", "100 partitions, 4 producers, 4 consumers, fixed rate"),
    ("catch-up-write", "catch-up: writing the backlog (closed loop, no consumer)"),
    ("catch-up", "catch-up: reading the backlog from the start"),
    ("partitions-1000", "1,000 partitions, 1 producer, acks=1, max sustained"),
    ("connections-100", "16 partitions, 100 producers (100 connections), acks=1, max sustained"),
    ("large-batch", "1 partition, 1 MiB batches, linger 1 ms, acks=1, max sustained"),
]
results = {k: load(f"{k}.json") for k, _ in names}
cpu = {k: load(f"{k}-broker-cpu.json") for k, _ in names}
# With ONLY naming a subset, only the workloads asked for are reported.
only = os.environ.get("ONLY", "").split()
names = [(k, title) for k, title in names if not only or k in only or (k == "catch-up-write" and "catch-up" in only)]
if names:
    w("## Throughput\n")
    w("| workload | rate asked (msg/s) | produce msg/s | produce MiB/s | / limit | consume msg/s | consume MiB/s | / limit | vs max-acks1 |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = (results.get("max-acks1") or {}).get("produce", {}).get("msgs_per_s") or 0
    for k, title in names:
        r = results[k]
        if r is None:
            w(f"| {k}: {title} | not run or failed (see raw logs) | | | | | | | |")
            continue
        p, c = r["produce"], r["consume"]
        rate = r["config"].get("rate", 0)
        asked = "closed loop" if not rate else f"{rate:,.0f}"
        consume_limit = min(read_mib, iperf_mib) if k == "catch-up" else iperf_mib
        vs = f"{p['msgs_per_s'] / base:.2f}" if base and k in ("partitions-1000", "connections-100", "max-acksall") else ""
        w(f"| {k}: {title} | {asked} | {p['msgs_per_s']:,.0f} | {p['mib_per_s']:,.1f} | {p['mib_per_s'] / produce_limit:.3f} | "
          f"{c['msgs_per_s']:,.0f} | {c['mib_per_s']:,.1f} | {c['mib_per_s'] / consume_limit:.3f} | {vs} |")
    w("\nTargets (issue #11, 2-core machine): max-acks1 produce >= 0.5 of the produce limit with tailing "
      "consumption >= 0.97 of produce; max-acksall >= 0.6 of max-acks1; partitions-1000 and "
      "connections-100 >= 0.8 of max-acks1; large-batch >= 0.7 of the produce limit.\n")

    w("## Latency (us)\n")
    w("| workload | publish p50 / p99 / p99.9 / max | publish delay p99 | end-to-end p50 / p99 / p99.9 / max | fetch p50 / p99 | errors | lost | duplicates |")
    w("|---|---|---:|---|---|---:|---:|---:|")
    for k, title in names:
        r = results[k]
        if r is None:
            continue
        l, d, e, f = r["produce"]["latency_us"], r["publish_delay_us"], r["e2e_latency_us"], r.get("fetch_latency_us", {})
        w(f"| {k} | {l['p50']:,} / {l['p99']:,} / {l['p999']:,} / {l['max']:,} | {d['p99']:,} | "
          f"{e['p50']:,} / {e['p99']:,} / {e['p999']:,} / {e['max']:,} | {f.get('p50', 0):,} / {f.get('p99', 0):,} | "
          f"{r['errors']} | {r['lost']} | {r['duplicates']} |")
    w(f"\nThe acks=all floor is fio's write+fdatasync p50 / p99 above ({sync_p50:,.0f} / {sync_p99:,.0f} us).\n")

    w("## Broker CPU\n")
    w("Broker CPU seconds (utime + stime of the whole process, io_uring workers included) over a whole "
      "loadgen run, divided by the GiB it moved in that run (produced + consumed). Only fixed-work runs "
      "are listed: a find-max run's CPU spans trials at different rates.\n")
    w("| workload | broker CPU s/s | GiB moved | CPU s per GiB |\n|---|---:|---:|---:|")
    for k in ("latency-50pct", "omb-100p", "catch-up-write", "catch-up"):
        r, c = results.get(k), cpu.get(k)
        if r is None or c is None or not c["wall_s"]:
            continue
        # Bytes over the whole run: the measured rates times the wall time of the run is an
        # overestimate for runs with warm-up; use the measured window's bytes scaled to the run.
        window = r["measured_s"] or 1
        gib = (r["produce"]["bytes"] + r["consume"]["bytes"]) / (1 << 30)
        cpu_in_window = c["cpu_s"] * min(1.0, window / c["wall_s"])
        per = cpu_in_window / gib if gib else float("nan")
        w(f"| {k} | {c['cpu_s'] / c['wall_s']:.2f} | {gib:.2f} | {per:.2f} |")
    w("\n(For runs with a warm-up, CPU is prorated to the measured window, which slightly favours runs "
      "whose set-up and drain are cheap.)\n")

def threads(name):
    """Per thread group (shards, io_uring workers, the rest): CPU ticks and switches."""
    out = {}
    path = os.path.join(raw, name)
    if not os.path.exists(path):
        return out
    for line in open(path):
        comm, ticks, switches = line.split()
        group = "iou-wrk" if comm.startswith("iou-") else ("shard" if "shard" in comm else "other")
        t, s_ = out.get(group, (0, 0))
        out[group] = (t + int(ticks), s_ + int(switches))
    return out

tick = os.sysconf("SC_CLK_TCK")
bottleneck = []
for k, title in names:
    r, c = results.get(k), cpu.get(k)
    before, after = threads(f"{k}-threads-before.txt"), threads(f"{k}-threads-after.txt")
    lg, d0, d1 = text(f"{k}-loadgen-time.txt"), text(f"{k}-disk-before.txt"), text(f"{k}-disk-after.txt")
    if r is None or c is None or not c["wall_s"] or not after or not lg:
        continue
    wall = c["wall_s"]
    busy = {g: (after[g][0] - before.get(g, (0, 0))[0]) / tick / wall for g in after}
    switches = sum(after[g][1] - before.get(g, (0, 0))[1] for g in after)
    user, system = (float(x) for x in lg.split()[-2:])
    messages = (r["produce"]["messages"] + r["consume"]["messages"]) * (wall / (r["measured_s"] or wall))
    disk_busy = disk_queue = float("nan")
    if d0 and d1:
        (b0, q0), (b1, q1) = (map(int, d0.split()), map(int, d1.split()))
        disk_busy, disk_queue = (b1 - b0) / (wall * 1000), (q1 - q0) / (wall * 1000)
    # io_uring workers come and go: the process total keeps the time of those that exited.
    workers = max(0.0, c["cpu_s"] / wall - busy.get("shard", 0) - busy.get("other", 0))
    s0, s1 = text(f"{k}-steal-before.txt"), text(f"{k}-steal-after.txt")
    steal = (int(s1) - int(s0)) / tick / (wall * (os.cpu_count() or 1)) if s0 and s1 else float("nan")
    bottleneck.append(f"| {k} | {c['cpu_s'] / wall:.2f} | {busy.get('shard', 0):.2f} | {workers:.2f} | {busy.get('other', 0):.2f} | "
                      f"{(user + system) / wall:.2f} | {disk_busy * 100:.0f}% | {disk_queue:.2f} | "
                      f"{switches / messages if messages else float('nan'):.3f} | {steal * 100:.0f}% |")
if bottleneck:
    w("## Where the time went\n")
    w("Averages over each whole loadgen run (a find-max run spans all its trials): cores busy per "
      "broker thread group (from /proc/PID/task: the shard threads; io_uring's iou-wrk workers, which "
      "exit when idle, as the process total less the threads still there; the rest), the load generator's cores busy (user + sys from `time`; it has one core), the data "
      "disk's busy share and average queue depth (/proc/diskstats io_ticks and weighted time), and "
      "the broker's context switches per message moved (measured messages scaled to the run), and the "
      "VM's steal: the share of all its CPUs' time the hypervisor gave to others (/proc/stat), which "
      "marks a run taken while the neighbours were busy.\n")
    w("| workload | broker total | shards | iou-wrk (and exited threads) | broker other | loadgen | disk busy | disk queue | broker switches / msg | VM steal |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for line in bottleneck:
        w(line)
    w("")

ab = sorted(f[:-5] for f in os.listdir(raw)
            if f.startswith("idem-") and f.endswith(".json") and not f.endswith("-broker-cpu.json"))
if ab:
    import statistics
    w("## Idempotence on / off\n")
    w("Closed loop (max throughput; latencies include queueing), 16 partitions, 1 producer, "
      "1 consumer, runs alternating on / off so that drift hits both alike. Broker CPU is per GiB "
      "moved over the whole run.\n")
    w("| run | produce msg/s | produce MiB/s | / limit | publish p50 / p99 us | broker CPU s per GiB | errors / lost / duplicates |")
    w("|---|---:|---:|---:|---|---:|---|")
    by_variant = {"on": [], "off": []}
    for k in ab:
        r, c = load(f"{k}.json"), load(f"{k}-broker-cpu.json")
        p, l = r["produce"], r["produce"]["latency_us"]
        gib = (p["bytes"] + r["consume"]["bytes"]) / (1 << 30)
        per = c["cpu_s"] * min(1.0, (r["measured_s"] or 1) / c["wall_s"]) / gib if gib else float("nan")
        by_variant[k.split("-")[1]].append((p["msgs_per_s"], l["p99"], per))
        w(f"| {k} | {p['msgs_per_s']:,.0f} | {p['mib_per_s']:,.1f} | {p['mib_per_s'] / produce_limit:.3f} | "
          f"{l['p50']:,} / {l['p99']:,} | {per:.2f} | {r['errors']} / {r['lost']} / {r['duplicates']} |")
    med = {v: [statistics.median(x[i] for x in runs) for i in range(3)] for v, runs in by_variant.items() if runs}
    if "on" in med and "off" in med:
        w(f"\nMedians: on {med['on'][0]:,.0f} msg/s, p99 {med['on'][1]:,.0f} us, {med['on'][2]:.2f} CPU s/GiB; "
          f"off {med['off'][0]:,.0f} msg/s, p99 {med['off'][1]:,.0f} us, {med['off'][2]:.2f} CPU s/GiB. "
          f"Throughput on / off = {med['on'][0] / med['off'][0]:.3f}; CPU per GiB on / off = "
          f"{med['on'][2] / med['off'][2]:.3f}.\n")

for k, _ in names:
    r = results[k]
    if r is not None and "find_max" in r:
        fm = r["find_max"]
        w(f"### {k}: find-max trials\n")
        w("| rate asked | produced msg/s | consumed msg/s | publish delay p99 (us) | publish p99 (us) | sustained |")
        w("|---:|---:|---:|---:|---:|---|")
        for t in fm["trials"]:
            asked = "closed loop" if not t["rate"] else f"{t['rate']:,.0f}"
            w(f"| {asked} | {t['produce_msgs_per_s']:,.0f} | {t['consume_msgs_per_s']:,.0f} | "
              f"{t['publish_delay_p99_us']:,} | {t['publish_p99_us']:,} | {t['sustained']} |")
        w("")

w("## Raw data\n")
w(f"Under `{raw}/`: fio and iperf3 JSON; per workload the loadgen JSON, its latency plot (`.svg`), "
  "histograms (`-hgrm/*.hgrm`, ms), final table, live log, exact command, broker log and broker CPU sample.\n")
for k, _ in names:
    if results[k] is not None:
        w(f"- {k}: `{text(f'{k}-command.txt')}`")
with open(report, "w") as f:
    f.write("\n".join(out) + "\n")
print(report)
PY
log "report: $report"
