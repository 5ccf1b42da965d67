#!/usr/bin/env bash
# Tuning A/B benchmark (issue #6): measures what one kernel setting does to the broker, with
# loadgen against a broker pinned apart from the load, alternating the two values of the
# setting over several rounds (A B A B A B) so that drift of this shared VM cancels, and
# measuring the same-run physical limit (fio for the disk, iperf3 for loopback TCP) next to
# every figure. Every setting it changes is restored when it exits, even on error.
# Writes bench-results/tuning-<UTC date>-<commit>[-dirty].md and keeps everything it was
# computed from under bench-results/raw/<same stem>/. tuning.md quotes these reports.
#
# Experiments (A = this machine's default, B = the candidate; ONLY picks some):
#   scheduler  /sys/block/DEV/queue/scheduler        mq-deadline  vs none
#   nomerges   /sys/block/DEV/queue/nomerges         0            vs 2
#   thp        /sys/kernel/mm/transparent_hugepage/enabled  madvise vs always
#   cstates    cpuidle state1 (haltpoll) of every CPU        enabled vs disabled (poll only)
#   busypoll   net.core.busy_read / busy_poll        0/0          vs 50/50
#   sockbuf    net.core.{r,w}mem_max, net.ipv4.tcp_{r,w}mem max  this machine's vs at least 16 MiB
# Workloads per (round, value), each against a broker started fresh for that value:
#   all-fixed  acks=all, open loop at RATE_ALL msg/s   (publish latency; the fsync path)
#   all-max    acks=all, closed loop                   (max throughput, labelled closed loop)
#   one-fixed  acks=1, open loop at RATE_ONE msg/s     (publish and end-to-end latency)
#   one-max    acks=1, closed loop
#   16 partitions, 1 producer, 1 consumer, 1 KiB messages, batch 16 KiB, linger LINGER_MS.
# Limits per (round, value): fio seq write 64 KiB qd4 and write+fdatasync 4 KiB qd1 for the
# disk experiments, iperf3 loopback 1 stream for the network ones, both for the CPU ones.
# Baseline (once, first): fio seq write 1 MiB qd4, seq read 1 MiB qd8, rand read 4 KiB qd32,
# write+fdatasync 4 KiB qd1, iperf3.
#
# Environment (defaults in brackets):
#   ONLY          experiments to run, space-separated          [scheduler nomerges thp cstates busypoll sockbuf]
#   ROUNDS        A/B rounds per experiment                    [3]
#   DURATION      measured seconds per loadgen run             [10]
#   WARMUP        warm-up seconds per loadgen run              [3]
#   FIO_SECONDS   runtime of each fio job and of iperf3        [5]
#   RATE_ALL      open-loop rate of all-fixed, msg/s           [20000]
#   RATE_ONE      open-loop rate of one-fixed, msg/s           [50000]
#   LINGER_MS     the producer's linger (its wait for a fuller batch) [5]; 0 shows the
#                 broker's and the disk's latency without the producer's wait in it
#   BASELINE      1 = run the baseline fio/iperf3 set          [1]
#   DATA_DIR      parent of the scratch directory (ext4/XFS)   [/var/tmp]
#   QUIET_WAIT_S  seconds to wait for other compilers before each (round, value)   [600]
#   NOISY_RETRIES times a (round, value) that saw a compiler (or failed) is measured again  [3]
#   BROKER_CORES / LOADGEN_CORES                               [0 / 1]
#   PORT          the broker's port on 127.0.0.1               [29393]
#   BUILD_COMMIT  build this commit as committed (git archive), not the working tree  [unset]
#   CARGO_TARGET_DIR  passed through to cargo
# Needs root (it writes /sys and /proc/sys). Installs fio and iperf3 with apt-get if missing.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
invocation="$(printf '%q ' "$0" "$@")"
for var in ONLY ROUNDS DURATION WARMUP FIO_SECONDS RATE_ALL RATE_ONE LINGER_MS BASELINE DATA_DIR \
    QUIET_WAIT_S NOISY_RETRIES BROKER_CORES LOADGEN_CORES PORT BUILD_COMMIT CARGO_TARGET_DIR; do
    if [[ -n "${!var:-}" ]]; then
        invocation="$var=$(printf '%q' "${!var}") $invocation"
    fi
done
ONLY=${ONLY:-scheduler nomerges thp cstates busypoll sockbuf}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
FIO_SECONDS=${FIO_SECONDS:-5}
RATE_ALL=${RATE_ALL:-20000}
RATE_ONE=${RATE_ONE:-50000}
LINGER_MS=${LINGER_MS:-5}
BASELINE=${BASELINE:-1}
DATA_DIR=${DATA_DIR:-/var/tmp}
QUIET_WAIT_S=${QUIET_WAIT_S:-600}
NOISY_RETRIES=${NOISY_RETRIES:-3}
BROKER_CORES=${BROKER_CORES:-0}
LOADGEN_CORES=${LOADGEN_CORES:-1}
PORT=${PORT:-29393}
BUILD_COMMIT=${BUILD_COMMIT:-}

log() { printf '[tuning-bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ "$(id -u)" == 0 ]] || die "needs root: it changes /sys and /proc/sys settings (and restores them)"
if ! command -v fio >/dev/null 2>&1 || ! command -v iperf3 >/dev/null 2>&1; then
    log "installing fio and iperf3"
    apt-get update -qq && apt-get install -y -qq fio iperf3 >/dev/null
fi
command -v python3 >/dev/null 2>&1 || die "python3 is required to read the JSON results"

commit=$(git rev-parse --short HEAD)
if [[ -n "$BUILD_COMMIT" ]]; then
    # Build one commit exactly as committed (git archive into a scratch tree), so that
    # uncommitted work of others in this tree neither breaks the build nor changes what is
    # measured.
    commit=$(git rev-parse --short "$BUILD_COMMIT^{commit}")
    src=$(mktemp -d "${TMPDIR:-/tmp}/ringbus-tuning-src.XXXXXX")
    git archive "$commit" | tar -x -C "$src"
    log "building the release binary of $commit (committed tree in $src)"
    # The binary lives in the cli crate since #13; older commits have it in broker.
    package=broker
    [[ -f "$src/cli/Cargo.toml" ]] && package=cli
    (cd "$src" && cargo build --release -p "$package" --bin ringbus >&2)
    ringbus="${CARGO_TARGET_DIR:-$src/target}/release/ringbus"
else
    log "building the release binary (working tree)"
    cargo build --release -p cli --bin ringbus >&2
    ringbus="${CARGO_TARGET_DIR:-$repo/target}/release/ringbus"
    if [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
        commit="$commit-dirty"
    fi
fi
[[ -x "$ringbus" ]] || die "no $ringbus"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
stem="tuning-$stamp-$commit"
raw="bench-results/raw/$stem"
report="bench-results/$stem.md"
mkdir -p "$raw"
scratch=$(mktemp -d "$DATA_DIR/ringbus-tuning.XXXXXX")
[[ "$(stat -f -c %T "$scratch")" != tmpfs ]] || die "$DATA_DIR is tmpfs: O_DIRECT needs a disk filesystem"

# The whole disk under the scratch directory (a partition's parent; this script does not
# handle dm/md: `ringbus tune check --data-dir` does).
devno=$(stat -c '%Hd:%Ld' "$scratch")
disk=$(bench-results/disk-of.sh "$scratch") || die "no block device under $scratch ($devno)"
queue="/sys/block/$disk/queue"
[[ -d "$queue" ]] || die "no $queue for $scratch ($devno)"

# --- Settings: every file this script may write, saved first and restored on exit ---------
cpuidle_files=(/sys/devices/system/cpu/cpu[0-9]*/cpuidle/state1/disable)
[[ -e "${cpuidle_files[0]}" ]] || cpuidle_files=()
thp=/sys/kernel/mm/transparent_hugepage/enabled
sysctl_files=(/proc/sys/net/core/busy_read /proc/sys/net/core/busy_poll /proc/sys/net/core/rmem_max
    /proc/sys/net/core/wmem_max /proc/sys/net/ipv4/tcp_rmem /proc/sys/net/ipv4/tcp_wmem)
saved_files=("$queue/scheduler" "$queue/nomerges" "$thp" "${sysctl_files[@]}" "${cpuidle_files[@]}")
declare -A saved
# Files like scheduler and THP list every choice with the current one in [brackets].
current() { local text; text=$(cat "$1"); if [[ "$text" == *"["*"]"* ]]; then text=${text#*[}; text=${text%%]*}; fi; echo "$text"; }
for file in "${saved_files[@]}"; do saved[$file]=$(current "$file"); done
set_file() { # path value
    echo "$2" >"$1" || die "cannot write $2 to $1"
    echo "$(date -u +%H:%M:%S) set $1 = $2" >>"$raw/settings.log"
}
broker_pid=""
restore() {
    if [[ -n "$broker_pid" ]]; then kill "$broker_pid" 2>/dev/null || true; fi
    if [[ -n "${sampler_pid:-}" ]]; then kill "$sampler_pid" 2>/dev/null || true; fi
    pkill_iperf
    for file in "${saved_files[@]}"; do
        echo "${saved[$file]}" >"$file" 2>/dev/null || log "WARNING: could not restore $file to ${saved[$file]}"
    done
    rm -rf "$scratch"
    # The exported source tree, unless the binary still lives in it.
    if [[ -n "${src:-}" && -n "${CARGO_TARGET_DIR:-}" ]]; then rm -rf "$src"; fi
    log "settings restored"
}
iperf_pid=""
pkill_iperf() { if [[ -n "$iperf_pid" ]]; then kill "$iperf_pid" 2>/dev/null || true; iperf_pid=""; fi; }
trap restore EXIT
trap 'exit 130' INT TERM
for file in "${saved_files[@]}"; do printf '%s = %s\n' "$file" "${saved[$file]}"; done >"$raw/settings-before.txt"

# Experiment NAME VALUE(A|B): sets the machine to that side. A is what the machine had.
apply_value() {
    local experiment=$1 side=$2
    case "$experiment" in
        scheduler) set_file "$queue/scheduler" "$([[ $side == A ]] && echo "${saved[$queue/scheduler]}" || echo none)" ;;
        nomerges) set_file "$queue/nomerges" "$([[ $side == A ]] && echo "${saved[$queue/nomerges]}" || echo 2)" ;;
        thp) set_file "$thp" "$([[ $side == A ]] && echo "${saved[$thp]}" || echo always)" ;;
        cstates)
            for file in "${cpuidle_files[@]}"; do
                set_file "$file" "$([[ $side == A ]] && echo "${saved[$file]}" || echo 1)"
            done ;;
        busypoll)
            for file in /proc/sys/net/core/busy_read /proc/sys/net/core/busy_poll; do
                set_file "$file" "$([[ $side == A ]] && echo "${saved[$file]}" || echo 50)"
            done ;;
        sockbuf)
            local mib16=$((16 << 20))
            for file in /proc/sys/net/core/rmem_max /proc/sys/net/core/wmem_max; do
                set_file "$file" "$([[ $side == A ]] && echo "${saved[$file]}" || echo $mib16)"
            done
            for file in /proc/sys/net/ipv4/tcp_rmem /proc/sys/net/ipv4/tcp_wmem; do
                local min def max
                read -r min def max <<<"${saved[$file]}"
                # Raise the maximum to 16 MiB, never lower it.
                set_file "$file" "$([[ $side == A || $max -ge $mib16 ]] && echo "$min $def $max" || echo "$min $def $mib16")"
            done ;;
        *) die "unknown experiment $experiment" ;;
    esac
}
describe_value() {
    local experiment=$1 side=$2
    case "$experiment" in
        scheduler) [[ $side == A ]] && echo "scheduler=${saved[$queue/scheduler]}" || echo "scheduler=none" ;;
        nomerges) [[ $side == A ]] && echo "nomerges=${saved[$queue/nomerges]}" || echo "nomerges=2" ;;
        thp) [[ $side == A ]] && echo "THP ${saved[$thp]}" || echo "THP always" ;;
        cstates) [[ $side == A ]] && echo "haltpoll idle state enabled" || echo "haltpoll idle state disabled (poll only)" ;;
        busypoll) [[ $side == A ]] && echo "busy_read/busy_poll ${saved[/proc/sys/net/core/busy_read]}/${saved[/proc/sys/net/core/busy_poll]}" || echo "busy_read/busy_poll 50/50" ;;
        sockbuf) [[ $side == A ]] && echo "rmem_max/wmem_max ${saved[/proc/sys/net/core/rmem_max]}/${saved[/proc/sys/net/core/wmem_max]}, tcp_rmem '${saved[/proc/sys/net/ipv4/tcp_rmem]}', tcp_wmem '${saved[/proc/sys/net/ipv4/tcp_wmem]}'" | tr '\t' ' ' || echo "rmem_max/wmem_max 16 MiB, tcp_rmem/tcp_wmem maximum at least 16 MiB" ;;
    esac
}
# Which limits and workloads each experiment measures.
limits_of() {
    case "$1" in
        scheduler | nomerges) echo "fio-w64k fio-sync4k" ;;
        busypoll | sockbuf) echo "iperf3" ;;
        *) echo "fio-w64k fio-sync4k iperf3" ;;
    esac
}
workloads_of() {
    case "$1" in
        scheduler | nomerges) echo "all-fixed all-max" ;;
        thp) echo "all-fixed one-max all-max" ;;
        cstates) echo "all-fixed one-fixed" ;;
        busypoll | sockbuf) echo "one-fixed one-max" ;;
    esac
}

# --- Quiet check: other engineers compile on this machine ---------------------------------
compiler_pattern='rustc|cargo|cc1|cc1plus|clang|ld|ld.lld|ld.gold|mold|make|ninja'
compilers() { pgrep -c -x "$compiler_pattern" 2>/dev/null || true; }
note_activity() { # label
    echo "$(date -u +%H:%M:%S) $1 compilers=$(compilers) load=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$raw/quiet.txt"
}
wait_for_quiet() {
    local waited=0
    while [[ "$(compilers)" -gt 0 && "$waited" -lt "$QUIET_WAIT_S" ]]; do
        [[ "$waited" == 0 ]] && log "other compilers are running: waiting up to ${QUIET_WAIT_S}s for quiet"
        sleep 10
        waited=$((waited + 10))
    done
    [[ "$(compilers)" -gt 0 ]] && log "WARNING: compilers still running; measuring anyway (recorded)"
    top -bn1 | head -15 >>"$raw/top.txt"
    return 0
}

# --- Machine -------------------------------------------------------------------------------
{
    echo "date=$stamp"
    echo "commit=$commit"
    echo "kernel=$(uname -r)"
    echo "cmdline=$(cat /proc/cmdline)"
    lscpu | grep -E '^(Architecture|CPU\(s\)|Model name|Thread|Core|Socket|NUMA node|L[123])'
    echo "memory=$(grep MemTotal /proc/meminfo)"
    echo "disk=$disk ($devno) under $scratch"
    for attr in scheduler nomerges rotational write_cache fua logical_block_size physical_block_size \
        io_poll nr_requests max_sectors_kb read_ahead_kb; do
        echo "queue/$attr=$(cat "$queue/$attr" 2>/dev/null)"
    done
    echo "filesystem=$(findmnt -n -o FSTYPE,OPTIONS --target "$scratch")"
    echo "thp=$(cat $thp)"
    echo "memlock_limit_kib=$(ulimit -l) nofile=$(ulimit -n)"
    echo "fio=$(fio --version) iperf3=$(iperf3 --version | head -1)"
    echo "broker_cores=$BROKER_CORES loadgen_cores=$LOADGEN_CORES"
} >"$raw/machine.txt"
git status --porcelain >"$raw/git-status.txt"

# --- Jobs ----------------------------------------------------------------------------------
fio_job() { # dir name options...
    local dir=$1 name=$2
    shift 2
    note_activity "$dir/fio-$name"
    log "fio $name ($dir)"
    fio --name="$name" --directory="$scratch" --ioengine=io_uring --direct=1 --time_based \
        --runtime="$FIO_SECONDS" --lat_percentiles=1 --output-format=json "$@" \
        >"$dir/fio-$name.json" 2>"$dir/fio-$name.stderr" || die "fio $name failed"
    rm -f "$scratch/$name".*
}
iperf_job() { # dir
    local dir=$1
    note_activity "$dir/iperf3"
    log "iperf3 ($dir)"
    iperf3 -s -1 -p 5399 >/dev/null 2>&1 &
    iperf_pid=$!
    sleep 0.5
    iperf3 -c 127.0.0.1 -p 5399 -t "$FIO_SECONDS" -J >"$dir/iperf3.json" || die "iperf3 failed"
    wait "$iperf_pid" 2>/dev/null || true
    iperf_pid=""
}
limit_job() { # dir limit
    case "$2" in
        fio-w64k) fio_job "$1" w64k-qd4 --rw=write --bs=64k --iodepth=4 --size=2g ;;
        fio-sync4k) fio_job "$1" sync4k-qd1 --rw=write --bs=4k --iodepth=1 --fdatasync=1 --size=256m ;;
        iperf3) iperf_job "$1" ;;
    esac
}

start_broker() { # dir
    local dir=$1
    rm -rf "$scratch/data"
    mkdir -p "$scratch/data"
    # No Kafka listener: the runs measure the ringbus wire, and must not take 9092 (binaries
    # from before the Kafka listener have no such option).
    # shellcheck disable=SC2046 # the option is two words or none
    "$ringbus" serve --listen "127.0.0.1:$PORT" --cores "$BROKER_CORES" --data-dir "$scratch/data" \
        $("$ringbus" serve --help | grep -q -- --kafka-listen && echo --kafka-listen none) \
        >"$dir/broker.log" 2>&1 &
    broker_pid=$!
    for _ in $(seq 100); do
        grep -q "listening on" "$dir/broker.log" && return 0
        sleep 0.1
    done
    die "the broker did not start ($dir/broker.log)"
}
stop_broker() {
    kill -TERM "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" || true
    broker_pid=""
    rm -rf "$scratch/data"
}

loadgen_job() { # dir workload
    local dir=$1 workload=$2 acks rate
    case "$workload" in
        all-fixed) acks=all rate=$RATE_ALL ;;
        all-max) acks=all rate=0 ;;
        one-fixed) acks=1 rate=$RATE_ONE ;;
        one-max) acks=1 rate=0 ;;
    esac
    local command=("$ringbus" loadgen --broker "127.0.0.1:$PORT" --cores "$LOADGEN_CORES"
        --topic "$workload" --create-topic --partitions 16 --producers 1 --consumers 1
        --message-size 1024 --batch-bytes 16384 --linger-ms "$LINGER_MS" --acks "$acks" --rate "$rate"
        --duration "$DURATION" --warmup "$WARMUP" --json "$dir/$workload.json"
        --hgrm-dir "$dir/$workload-hgrm")
    printf '%q ' "${command[@]}" >"$dir/$workload.command"
    note_activity "$dir/$workload"
    log "loadgen $workload ($dir)"
    local status=0
    "${command[@]}" >"$dir/$workload.table" 2>"$dir/$workload.live" || status=$?
    # Huge pages in the broker's memory (THP experiment: does anything get them?).
    grep -E '^(Rss|AnonHugePages)' "/proc/$broker_pid/smaps_rollup" >"$dir/$workload-broker-smaps.txt" 2>/dev/null || true
    echo "$status" >"$dir/$workload.exit"
    [[ $status -eq 0 ]] || log "WARNING: loadgen $workload exited $status ($dir/$workload.live)"
}

# --- Baseline ------------------------------------------------------------------------------
if [[ "$BASELINE" == 1 ]]; then
    dir="$raw/baseline"
    mkdir -p "$dir"
    wait_for_quiet
    fio_job "$dir" w1m-qd4 --rw=write --bs=1m --iodepth=4 --size=4g
    fio_job "$dir" r1m-qd8 --rw=read --bs=1m --iodepth=8 --size=2g
    fio_job "$dir" r4k-rand-qd32 --rw=randread --bs=4k --iodepth=32 --size=2g
    fio_job "$dir" w64k-qd4 --rw=write --bs=64k --iodepth=4 --size=2g
    fio_job "$dir" sync4k-qd1 --rw=write --bs=4k --iodepth=1 --fdatasync=1 --size=256m
    iperf_job "$dir"
fi

# --- Experiments ---------------------------------------------------------------------------
# A sampler counts compilers once a second for the whole of one (round, value): a compile that
# starts and ends inside a job is caught too. A noisy or failed (round, value) is kept (renamed
# round-N-X.noisy-K / .failed-K) and measured again, up to NOISY_RETRIES times.
sampler_pid=""
start_sampler() { # file
    (while :; do compilers; sleep 1; done) >"$1" 2>/dev/null &
    sampler_pid=$!
}
stop_sampler() {
    if [[ -n "$sampler_pid" ]]; then kill "$sampler_pid" 2>/dev/null || true; wait "$sampler_pid" 2>/dev/null || true; fi
    sampler_pid=""
}
noisy() { [[ -n "$(awk '$1 > 0' "$1/compilers.samples")" ]]; }
# A (round, value) failed when the broker died under it (something else killed it) or a
# loadgen run failed (lost, duplicated or failed messages, or no connection): measured again.
failed() { # dir
    local exit_file
    for exit_file in "$1"/*.exit; do
        [[ "$(cat "$exit_file")" == 0 ]] || return 0
    done
    [[ -n "$(cat "$1/broker-died" 2>/dev/null)" ]]
}
measure() { # experiment round side
    local experiment=$1 round=$2 side=$3
    local dir="$raw/$experiment/round-$round-$side" attempt=0
    while :; do
        mkdir -p "$dir"
        wait_for_quiet
        apply_value "$experiment" "$side"
        describe_value "$experiment" "$side" >"$dir/value.txt"
        start_sampler "$dir/compilers.samples"
        for limit in $(limits_of "$experiment"); do limit_job "$dir" "$limit"; done
        start_broker "$dir"
        for workload in $(workloads_of "$experiment"); do loadgen_job "$dir" "$workload"; done
        kill -0 "$broker_pid" 2>/dev/null || echo "the broker exited before the end of the runs" >"$dir/broker-died"
        stop_broker
        stop_sampler
        local why=""
        if failed "$dir"; then why=failed; elif noisy "$dir"; then why=noisy; else return 0; fi
        attempt=$((attempt + 1))
        if [[ "$attempt" -gt "$NOISY_RETRIES" ]]; then
            log "WARNING: $experiment round $round $side still $why after $NOISY_RETRIES retries: kept, flagged"
            return 0
        fi
        log "$experiment round $round $side $why: measuring it again (retry $attempt of $NOISY_RETRIES)"
        mv "$dir" "$dir.$why-$attempt"
    done
}
for experiment in $ONLY; do
    for round in $(seq "$ROUNDS"); do
        for side in A B; do measure "$experiment" "$round" "$side"; done
    done
    apply_value "$experiment" A
done

# --- Report --------------------------------------------------------------------------------
python3 - "$raw" "$report" "$commit" "$invocation" "$stamp" "$ONLY" "$ROUNDS" "$RATE_ALL" "$RATE_ONE" "$LINGER_MS" <<'PY'
import json, os, statistics, sys
raw, report, commit, invocation, stamp, only, rounds, rate_all, rate_one, linger_ms = sys.argv[1:]
rounds = int(rounds)
MiB = 1 << 20

def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def fio_bw(d, name):
    j = load(os.path.join(d, f"fio-{name}.json"))
    return j and j["jobs"][0]["write" if name.startswith(("w", "sync")) else "read"]["bw_bytes"] / MiB

def fio_iops(d, name):
    j = load(os.path.join(d, f"fio-{name}.json"))
    return j and j["jobs"][0]["read"]["iops"]

def fio_sync_us(d, pct):
    # One durable 4 KiB write = the write's total latency + the fdatasync's latency.
    j = load(os.path.join(d, "fio-sync4k-qd1.json"))
    if not j:
        return None
    job = j["jobs"][0]
    key = {"p50": "50.000000", "p99": "99.000000"}[pct]
    return (job["write"]["lat_ns"]["percentile"][key] + job["sync"]["lat_ns"]["percentile"][key]) / 1000

def iperf_mib(d):
    j = load(os.path.join(d, "iperf3.json"))
    return j and j["end"]["sum_received"]["bits_per_second"] / 8 / MiB

def lg(d, workload):
    return load(os.path.join(d, f"{workload}.json"))

def fmt(x, digits=0):
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"

def spread(values, digits=0):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{fmt(statistics.median(values), digits)} ({fmt(min(values), digits)}-{fmt(max(values), digits)})"

def ratio_spread(pairs, digits=2):
    rs = [b / a for a, b in pairs if a and b]
    if not rs:
        return "-"
    return f"{statistics.median(rs):.{digits}f} ({min(rs):.{digits}f}-{max(rs):.{digits}f})"

def text(path):
    try:
        return open(path).read().strip()
    except OSError:
        return ""

out = []
w = out.append
w(f"# Tuning A/B benchmark {stamp}, commit {commit}\n")
w("Produced by `bench-results/tuning-bench.sh`. Each experiment alternates the machine's value (A) "
  "and a candidate (B) over the rounds (A B A B ...), with a fresh broker per (round, value) and "
  "the physical limit measured in the same (round, value). Medians with (min-max) over the rounds; "
  "B/A is the median of the per-round ratios.\n")
quiet = [line.split() for line in text(os.path.join(raw, "quiet.txt")).splitlines()]
busy = [q for q in quiet if len(q) > 2 and q[2] != "compilers=0"]
loads = [float(q[3].split("=")[1]) for q in quiet if len(q) > 3]
if busy:
    w(f"Compilers were running at the start of {len(busy)} of {len(quiet)} jobs, kept attempts included "
      f"(first: `{' '.join(busy[0])}`; see `quiet.txt`, `top.txt`).\n")
if loads:
    w(f"Load average (1 min) before the jobs: median {statistics.median(loads):.2f}, "
      f"min {min(loads):.2f}, max {max(loads):.2f}.\n")
retried, still_noisy = [], []
for experiment in only.split():
    edir = os.path.join(raw, experiment)
    if not os.path.isdir(edir):
        continue
    for name in sorted(os.listdir(edir)):
        if ".noisy-" in name or ".failed-" in name:
            retried.append(f"{experiment}/{name}")
        else:
            samples = text(os.path.join(edir, name, "compilers.samples")).split()
            if any(int(x) > 0 for x in samples if x.isdigit()):
                still_noisy.append(f"{experiment}/{name}")
if retried:
    w(f"Measured again because a compiler ran during them (`.noisy-N`) or a run failed (`.failed-N`: "
      f"the broker was killed from outside, or loadgen failed); kept in raw/, not used: {', '.join(retried)}.\n")
if still_noisy:
    w(f"**Still noisy after the retries (used, but pessimistic):** {', '.join(still_noisy)}.\n")
elif any(os.path.exists(os.path.join(raw, e)) for e in only.split()):
    w("No compiler ran during any (round, value) used below (sampled once a second).\n")
w("## Setup\n")
w(f"- Command: `{invocation.strip()}`")
w(f"- Commit: `{commit}`; machine, disk and filesystem in `machine.txt`:")
w("```")
w(text(os.path.join(raw, "machine.txt")))
w("```")
w(f"- Broker `ringbus serve --cores 0` (fresh data dir per value and round), loadgen `--cores 1`, "
  f"16 partitions, 1 producer, 1 consumer, 1 KiB messages, batch 16 KiB, linger {linger_ms} ms "
  f"(publish latency counts the producer's linger wait too). "
  f"all-fixed: acks=all open loop at {int(rate_all):,} msg/s; one-fixed: acks=1 open loop at "
  f"{int(rate_one):,} msg/s; *-max: closed loop (throughput only; its latencies include queueing).\n")

base = os.path.join(raw, "baseline")
if os.path.isdir(base):
    w("## Baseline limits (fio O_DIRECT io_uring on the data filesystem, iperf3 loopback)\n")
    w("| limit | value |\n|---|---:|")
    w(f"| seq write 1 MiB qd4 | {fmt(fio_bw(base, 'w1m-qd4'))} MiB/s |")
    w(f"| seq write 64 KiB qd4 | {fmt(fio_bw(base, 'w64k-qd4'))} MiB/s |")
    w(f"| seq read 1 MiB qd8 | {fmt(fio_bw(base, 'r1m-qd8'))} MiB/s |")
    w(f"| rand read 4 KiB qd32 | {fmt(fio_iops(base, 'r4k-rand-qd32'))} IOPS |")
    w(f"| write+fdatasync 4 KiB qd1, p50 / p99 (write + sync) | {fmt(fio_sync_us(base, 'p50'))} / {fmt(fio_sync_us(base, 'p99'))} us |")
    w(f"| iperf3 loopback 1 stream | {fmt(iperf_mib(base))} MiB/s |")
    w("")

titles = {
    "all-fixed": "acks=all open loop",
    "all-max": "acks=all closed loop",
    "one-fixed": "acks=1 open loop",
    "one-max": "acks=1 closed loop",
}
for experiment in only.split():
    edir = os.path.join(raw, experiment)
    if not os.path.isdir(edir):
        continue
    dirs = {(r, s): os.path.join(edir, f"round-{r}-{s}") for r in range(1, rounds + 1) for s in "AB"}
    w(f"## {experiment}: A = {text(os.path.join(dirs[(1, 'A')], 'value.txt'))}, B = {text(os.path.join(dirs[(1, 'B')], 'value.txt'))}\n")
    w("| figure | A | B | B/A |\n|---|---:|---:|---:|")
    def row(label, get, digits=0):
        a = [get(dirs[(r, "A")]) for r in range(1, rounds + 1)]
        b = [get(dirs[(r, "B")]) for r in range(1, rounds + 1)]
        w(f"| {label} | {spread(a, digits)} | {spread(b, digits)} | {ratio_spread(list(zip(a, b)))} |")
    if os.path.exists(os.path.join(dirs[(1, "A")], "fio-w64k-qd4.json")):
        row("limit: fio seq write 64 KiB qd4, MiB/s", lambda d: fio_bw(d, "w64k-qd4"))
        row("limit: fio write+fdatasync 4 KiB p50, us", lambda d: fio_sync_us(d, "p50"))
        row("limit: fio write+fdatasync 4 KiB p99, us", lambda d: fio_sync_us(d, "p99"))
    if os.path.exists(os.path.join(dirs[(1, "A")], "iperf3.json")):
        row("limit: iperf3 loopback, MiB/s", iperf_mib)
    for workload in ("all-fixed", "all-max", "one-fixed", "one-max"):
        if not os.path.exists(os.path.join(dirs[(1, "A")], f"{workload}.command")):
            continue
        t = titles[workload]
        def get(d, *path, workload=workload):
            j = lg(d, workload)
            for p in path:
                if j is None:
                    return None
                j = j.get(p)
            return j
        row(f"{t}: produced msg/s", lambda d: get(d, "produce", "msgs_per_s"))
        if workload.endswith("fixed"):
            row(f"{t}: publish p50, us", lambda d: get(d, "produce", "latency_us", "p50"))
            row(f"{t}: publish p99, us", lambda d: get(d, "produce", "latency_us", "p99"))
            row(f"{t}: publish p99.9, us", lambda d: get(d, "produce", "latency_us", "p999"))
            row(f"{t}: publish delay p99, us", lambda d: get(d, "publish_delay_us", "p99"))
            row(f"{t}: end-to-end p99, us", lambda d: get(d, "e2e_latency_us", "p99"))
            if workload.startswith("all") and os.path.exists(os.path.join(dirs[(1, "A")], "fio-sync4k-qd1.json")):
                row(f"{t}: publish p50 / fio durable-write p50 (same run)",
                    lambda d: (get(d, "produce", "latency_us", "p50") or 0) / (fio_sync_us(d, "p50") or float("inf")) or None, 2)
        else:
            row(f"{t}: produced MiB/s", lambda d: get(d, "produce", "mib_per_s"), 1)
            if os.path.exists(os.path.join(dirs[(1, "A")], "fio-w64k-qd4.json")):
                row(f"{t}: MiB/s / fio write 64 KiB (same run)",
                    lambda d: (get(d, "produce", "mib_per_s") or 0) / (fio_bw(d, "w64k-qd4") or float("inf")) or None, 3)
            if os.path.exists(os.path.join(dirs[(1, "A")], "iperf3.json")):
                row(f"{t}: MiB/s / iperf3 (same run)",
                    lambda d: (get(d, "produce", "mib_per_s") or 0) / (iperf_mib(d) or float("inf")) or None, 3)
        bad = [f"{r}{s}" for (r, s), d in dirs.items() if (lg(d, workload) or {}).get("errors", 1)
               or (lg(d, workload) or {}).get("lost", 1) or (lg(d, workload) or {}).get("duplicates", 1)]
        if bad:
            w(f"| {t}: runs with errors, lost or duplicated messages (or no result) | {', '.join(bad)} | | |")
    if experiment == "thp":
        for s in "AB":
            smaps = text(os.path.join(dirs[(1, s)], "one-max-broker-smaps.txt")).replace("\n", ", ")
            w(f"\nBroker memory after one-max, round 1 {s}: `{smaps or 'not sampled'}`")
    w("")

w("## Raw data\n")
w(f"Under `{raw}/`: `machine.txt`, `settings-before.txt` and `settings.log` (every write, restored "
  "on exit), `quiet.txt` (compilers and load before every job), `top.txt`, `baseline/`, and per "
  "experiment `round-N-{A,B}/`: `value.txt`, fio and iperf3 JSON, per workload the loadgen JSON, "
  "`.command` (exact command line), `.table`, `.live`, `-hgrm/`, the broker's log and memory sample.\n")
with open(report, "w") as f:
    f.write("\n".join(out) + "\n")
print(report)
PY
log "report: $report"
