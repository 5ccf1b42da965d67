#!/usr/bin/env bash
# Storage benchmark: ringbus's partition log (storage/benches/log.rs) against the physical
# limits measured by fio on the same directory, alternating fio and the bench in each round
# (this disk swings up to 2x between runs, so each ringbus figure is compared with the fio
# figure of the same round). Writes bench-results/storage-<UTC date>-<commit>.md and keeps the
# raw fio JSON, the bench output and the latency histograms under bench-results/raw/<stem>/.
# See bench-results/README.md.
#
# Environment (defaults in brackets; QUICK=1 gives a 1-2 minute smoke run):
#   QUICK          1 = 1 round, 5 s per job, smaller files                           [0]
#   ROUNDS         rounds of (fio, bench) pairs                                       [3]
#   FIO_SECONDS    runtime of each fio job                                            [20]
#   BENCH_SECONDS  duration of each timed bench loop (--seconds)                      [10]
#   FIO_SIZE       size of the fio data file (fio syntax)                             [4g]
#   READ_BYTES     bytes the cold-read workload writes and reads back                 [1G]
#   DATA_DIR       parent of the scratch directory; ext4/XFS, not tmpfs               [/var/tmp]
#   QUIET_WAIT_S   seconds to wait for other compilers to finish before a round       [900]
#   BENCH_CPU      CPU the bench's executor is pinned to                              [last CPU]
#   CARGO_TARGET_DIR  passed through to cargo
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
invocation="$(printf '%q ' "$0" "$@")"
invocation_env=""
for var in QUICK ROUNDS FIO_SECONDS BENCH_SECONDS FIO_SIZE READ_BYTES DATA_DIR QUIET_WAIT_S \
    BENCH_CPU CARGO_TARGET_DIR; do
    if [[ -n "${!var:-}" ]]; then
        invocation_env+="$var=$(printf '%q' "${!var}") "
    fi
done

QUICK=${QUICK:-0}
if [[ "$QUICK" == 1 ]]; then
    ROUNDS=${ROUNDS:-1}
    FIO_SECONDS=${FIO_SECONDS:-5}
    BENCH_SECONDS=${BENCH_SECONDS:-5}
    FIO_SIZE=${FIO_SIZE:-2g}
    READ_BYTES=${READ_BYTES:-256M}
    QUIET_WAIT_S=${QUIET_WAIT_S:-0}
else
    ROUNDS=${ROUNDS:-3}
    FIO_SECONDS=${FIO_SECONDS:-20}
    BENCH_SECONDS=${BENCH_SECONDS:-10}
    FIO_SIZE=${FIO_SIZE:-4g}
    READ_BYTES=${READ_BYTES:-1G}
    QUIET_WAIT_S=${QUIET_WAIT_S:-900}
fi
DATA_DIR=${DATA_DIR:-/var/tmp}
BENCH_CPU=${BENCH_CPU:-$(($(nproc) - 1))}

log() { printf '[storage-bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- Tools -------------------------------------------------------------------------------
if ! command -v fio >/dev/null 2>&1; then
    log "installing fio"
    apt-get update -qq && apt-get install -y -qq fio >/dev/null
fi
command -v python3 >/dev/null 2>&1 || die "python3 is required to parse fio's JSON"

# --- Build -------------------------------------------------------------------------------
log "building the bench (cargo bench -p storage --bench log --no-run)"
bench_bin=$(cargo bench -p storage --bench log --no-run --message-format=json-render-diagnostics \
    | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    target = message.get("target", {})
    if message.get("reason") == "compiler-artifact" and target.get("name") == "log" \
            and "bench" in target.get("kind", []) and message.get("executable"):
        print(message["executable"])
')
[[ -x "$bench_bin" ]] || die "could not find the bench executable (got '$bench_bin')"
log "bench binary: $bench_bin"

# --- Scratch directory (fio files and the bench's data dir), checked for O_DIRECT ---------
mkdir -p "$DATA_DIR"
work=$(mktemp -d "$DATA_DIR/ringbus-storage-bench.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
fs_type=$(findmnt -n -o FSTYPE -T "$work" 2>/dev/null || stat -f -c %T "$work")
case "$fs_type" in
    tmpfs | ramfs) die "$work is on $fs_type: no direct I/O there; set DATA_DIR to an ext4/XFS directory" ;;
esac
dd if=/dev/zero of="$work/odirect-check" bs=4096 count=1 oflag=direct status=none 2>/dev/null \
    || die "$work ($fs_type) refuses O_DIRECT writes; set DATA_DIR to an ext4/XFS directory"
dd if="$work/odirect-check" of=/dev/null bs=4096 count=1 iflag=direct status=none 2>/dev/null \
    || die "$work ($fs_type) refuses O_DIRECT reads"
rm -f "$work/odirect-check"

# --- Identity of the run -------------------------------------------------------------------
commit=$(git rev-parse HEAD)
short=$(git rev-parse --short HEAD)
# The results directory itself does not make the tree dirty (this run writes into it).
if [[ -n "$(git status --porcelain -- . ':(exclude)bench-results')" ]]; then
    dirty=1
    short+="-dirty"
else
    dirty=0
fi
started_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)
stem="storage-$(date -u +%Y%m%dT%H%M%SZ)-$short"
raw="$repo/bench-results/raw/$stem"
report="$repo/bench-results/$stem.md"
mkdir -p "$raw"
git status --porcelain -- . ':(exclude)bench-results' >"$raw/git-status.txt" || true
git diff HEAD --stat >"$raw/git-diff-stat.txt" || true

# --- Machine --------------------------------------------------------------------------------
{
    source_dev=$(findmnt -n -o SOURCE -T "$work" || true)
    disk=$(lsblk -n -o PKNAME "$source_dev" 2>/dev/null | head -1 || true)
    [[ -n "$disk" ]] || disk=$(basename "$source_dev")
    echo "nproc=$(nproc)"
    echo "cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "memory=$(grep MemTotal /proc/meminfo | awk '{printf "%.1f GiB", $2/1048576}')"
    echo "kernel=$(uname -r)"
    echo "filesystem=$(findmnt -n -o FSTYPE,SOURCE,TARGET -T "$work" | tr -s ' ')"
    echo "mount_options=$(findmnt -n -o OPTIONS -T "$work")"
    echo "block_device=$disk"
    queue=""
    for setting in scheduler nr_requests max_sectors_kb max_hw_sectors_kb max_segments io_poll \
        rotational write_cache logical_block_size physical_block_size read_ahead_kb nomerges; do
        if [[ -r "/sys/block/$disk/queue/$setting" ]]; then
            queue+="$setting=$(tr -d '\n' <"/sys/block/$disk/queue/$setting") "
        fi
    done
    echo "queue=$queue"
    echo "transparent_hugepage=$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo '?')"
    echo "memlock_limit_kib=$(ulimit -l)"
    echo "fio=$(fio --version)"
    echo "rustc=$(rustc --version)"
    echo "bench_cpu=$BENCH_CPU"
} >"$raw/machine.txt"

# --- Quiet check: other engineers compile on this machine ---------------------------------
compiler_pattern='rustc|cargo|cc1|cc1plus|clang|ld|ld.lld|ld.gold|mold|make|ninja'
compilers() { pgrep -c -x "$compiler_pattern" 2>/dev/null || true; }
quiet_log="$raw/quiet.txt"
: >"$quiet_log"
note_activity() { # label
    echo "$(date -u +%H:%M:%S) $1 compilers=$(compilers) load=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$quiet_log"
}
wait_for_quiet() {
    local waited=0
    while [[ "$(compilers)" -gt 0 && "$waited" -lt "$QUIET_WAIT_S" ]]; do
        if [[ "$waited" == 0 ]]; then
            log "other compilers are running: waiting up to ${QUIET_WAIT_S}s for quiet"
        fi
        sleep 15
        waited=$((waited + 15))
    done
    if [[ "$(compilers)" -gt 0 ]]; then
        log "WARNING: compilers still running; measuring anyway (recorded in the report)"
    fi
}

# --- fio jobs ---------------------------------------------------------------------------------
fio_file="$work/fio.data"
# lat_percentiles: percentiles of submission + completion latency. io_uring sometimes completes
# a write inside the submitting syscall, and then completion latency alone reads ~1 us.
fio_common=(--ioengine=io_uring --direct=1 --time_based "--runtime=$FIO_SECONDS"
    --lat_percentiles=1 --output-format=json)

# name, then fio options. The data file is written once in full (prep) so that every job
# but the "grow" one works on written extents: the physical floor.
fio_job() {
    local round_dir=$1 name=$2
    shift 2
    note_activity "fio-$name"
    log "fio $name"
    fio --name="$name" "${fio_common[@]}" "$@" >"$round_dir/fio-$name.json" \
        2>"$round_dir/fio-$name.stderr" || die "fio $name failed: $(cat "$round_dir/fio-$name.stderr")"
}

bench_job() {
    local round_dir=$1 name=$2
    note_activity "bench-$name"
    log "bench $name"
    local command=("$bench_bin" --dir "$work" --seconds "$BENCH_SECONDS" --only "$name"
        --read-bytes "$READ_BYTES" --cpu "$BENCH_CPU")
    echo "${command[*]}" >"$round_dir/bench-$name.command"
    "${command[@]}" >"$round_dir/bench-$name.out" 2>"$round_dir/bench-$name.stderr" \
        || die "bench $name failed: $(tail -5 "$round_dir/bench-$name.stderr")"
}

run_round() {
    local round=$1
    local dir="$raw/round-$round"
    mkdir -p "$dir"
    wait_for_quiet
    note_activity "round-$round-start"
    # Writes, same block size and queue depth as ringbus's throughput workloads.
    fio_job "$dir" w64k-qd4 --filename="$fio_file" --size="$FIO_SIZE" --rw=write --bs=64k --iodepth=4
    bench_job "$dir" append-64k
    fio_job "$dir" w1m-qd4 --filename="$fio_file" --size="$FIO_SIZE" --rw=write --bs=1m --iodepth=4
    bench_job "$dir" append-1m
    # Write + fdatasync every write, queue depth 1. 520k is one durable-8 round as ringbus
    # writes it: 8 entries of 66,197 bytes, padded to 130 blocks.
    fio_job "$dir" w520k-sync --filename="$fio_file" --size="$FIO_SIZE" --rw=write --bs=520k \
        --iodepth=1 --fdatasync=1
    fio_job "$dir" w64k-sync --filename="$fio_file" --size="$FIO_SIZE" --rw=write --bs=64k \
        --iodepth=1 --fdatasync=1
    bench_job "$dir" durable-8
    fio_job "$dir" w4k-sync --filename="$fio_file" --size="$FIO_SIZE" --rw=write --bs=4k \
        --iodepth=1 --fdatasync=1
    # The same into a fresh file that grows with every write into fallocated (unwritten)
    # extents, as a log segment does: what the filesystem's metadata adds to each fdatasync.
    rm -f "$work/fio-grow.data"
    fio_job "$dir" w4k-sync-grow --filename="$work/fio-grow.data" --size=1g --fallocate=keep \
        --rw=write --bs=4k --iodepth=1 --fdatasync=1
    rm -f "$work/fio-grow.data"
    bench_job "$dir" durable-1
    fio_job "$dir" r1m-qd8 --filename="$fio_file" --size="$FIO_SIZE" --rw=read --bs=1m --iodepth=8
    bench_job "$dir" cold-read
    bench_job "$dir" hot-read
    note_activity "round-$round-end"
}

log "scratch dir $work ($fs_type); preparing the fio data file ($FIO_SIZE)"
fio --name=prep --ioengine=io_uring --direct=1 --filename="$fio_file" --size="$FIO_SIZE" \
    --rw=write --bs=1m --iodepth=4 --output-format=json >"$raw/fio-prep.json" 2>"$raw/fio-prep.stderr" \
    || die "fio prep failed: $(cat "$raw/fio-prep.stderr")"

for round in $(seq 1 "$ROUNDS"); do
    log "round $round of $ROUNDS"
    run_round "$round"
done
finished_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# --- Report -----------------------------------------------------------------------------------
log "writing $report"
INVOCATION="${invocation_env}${invocation}" COMMIT="$commit" DIRTY="$dirty" STARTED="$started_utc" \
    FINISHED="$finished_utc" ROUNDS="$ROUNDS" FIO_SECONDS="$FIO_SECONDS" BENCH_SECONDS="$BENCH_SECONDS" \
    FIO_SIZE="$FIO_SIZE" READ_BYTES="$READ_BYTES" QUICK="$QUICK" FIO_COMMON="${fio_common[*]}" \
    python3 - "$raw" "$report" <<'PY'
import glob, json, os, re, statistics, sys

raw, report = sys.argv[1], sys.argv[2]
rounds = sorted(glob.glob(os.path.join(raw, "round-*")), key=lambda p: int(p.rsplit("-", 1)[1]))
env = os.environ
settings = {
    "invocation": env["INVOCATION"].strip(), "commit": env["COMMIT"],
    "dirty": env["DIRTY"] == "1", "started": env["STARTED"], "finished": env["FINISHED"],
    "rounds": int(env["ROUNDS"]), "fio_seconds": env["FIO_SECONDS"],
    "bench_seconds": env["BENCH_SECONDS"], "fio_size": env["FIO_SIZE"],
    "read_bytes": env["READ_BYTES"], "quick": env["QUICK"] == "1",
    "stem": os.path.basename(raw), "fio_common": env["FIO_COMMON"],
}
machine = dict(line.rstrip("\n").split("=", 1) for line in open(os.path.join(raw, "machine.txt")))

def fio(round_dir, name):
    job = json.load(open(os.path.join(round_dir, f"fio-{name}.json")))["jobs"][0]
    out = {}
    for direction in ("read", "write"):
        side = job[direction]
        if side["io_bytes"] > 0:
            out["mib_per_s"] = side["bw_bytes"] / 2**20
            out["iops"] = side["iops"]
            # Total latency (submission + completion) where fio has its percentiles.
            pct = side["lat_ns"].get("percentile") or side["clat_ns"].get("percentile", {})
            out["clat_p50_us"] = pct.get("50.000000", 0) / 1e3
            out["clat_p99_us"] = pct.get("99.000000", 0) / 1e3
    sync = job.get("sync", {}).get("lat_ns", {})
    if sync.get("N", 0) > 0:
        pct = sync["percentile"]
        out["sync_p50_us"] = pct["50.000000"] / 1e3
        out["sync_p99_us"] = pct["99.000000"] / 1e3
        # One iteration is a write then an fdatasync: the sum of the two percentiles is the
        # estimate used as the limit (fio reports them separately).
        out["p50_us"] = out["clat_p50_us"] + out["sync_p50_us"]
        out["p99_us"] = out["clat_p99_us"] + out["sync_p99_us"]
        out["iteration_mean_us"] = 1e6 / out["iops"]
    return out

def bench(round_dir, name):
    values, hlog = {}, []
    for line in open(os.path.join(round_dir, f"bench-{name}.out")):
        if line.startswith("RESULT "):
            for field in line.split()[1:]:
                key, _, value = field.partition("=")
                try:
                    values[key] = float(value)
                except ValueError:
                    values[key] = value
        elif line.startswith("HLOG "):
            hlog.append(line[5:])
    if hlog:
        with open(os.path.join(round_dir, f"bench-{name}.hlog"), "w") as out:
            out.write("#[Histogram log format version 1.3]\n")
            out.write("#[values in microseconds; one tagged histogram per line]\n")
            out.write('"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"\n')
            out.writelines(hlog)
    return values

data = []
for round_dir in rounds:
    r = {"fio": {}, "bench": {}}
    for path in glob.glob(os.path.join(round_dir, "fio-*.json")):
        name = os.path.basename(path)[4:-5]
        r["fio"][name] = fio(round_dir, name)
    for path in glob.glob(os.path.join(round_dir, "bench-*.out")):
        name = os.path.basename(path)[6:-4]
        r["bench"][name] = bench(round_dir, name)
    r["compilers_max"] = 0
    data.append(r)

# Compiler activity per round, from the samples taken before each job.
samples = [line.split() for line in open(os.path.join(raw, "quiet.txt"))]
round_of_sample, current = [], 0
for sample in samples:
    if sample[1].startswith("round-") and sample[1].endswith("-start"):
        current = int(sample[1].split("-")[1])
    count = int(sample[2].split("=")[1])
    if 1 <= current <= len(data):
        data[current - 1]["compilers_max"] = max(data[current - 1]["compilers_max"], count)
noisy = [i + 1 for i, r in enumerate(data) if r["compilers_max"] > 0]

def get(r, kind, name, key):
    return r[kind].get(name, {}).get(key)

# (label, ringbus (kind, name, key), limit (kind, name, key) or None, ratio kind, target, fmt)
# ratio kind: "higher" = ringbus / limit, target is a minimum; "lower" = ringbus / limit for
# latencies, target is a maximum.
rows = [
    ("append-64k MiB/s vs fio seq write 64k qd4", ("bench", "append-64k", "mib_per_s"),
     ("fio", "w64k-qd4", "mib_per_s"), "higher", 0.85, "{:.0f}"),
    ("append-1m MiB/s vs fio seq write 1m qd4", ("bench", "append-1m", "mib_per_s"),
     ("fio", "w1m-qd4", "mib_per_s"), "higher", 0.85, "{:.0f}"),
    ("durable-8 MiB/s vs fio seq write 64k qd4", ("bench", "durable-8", "mib_per_s"),
     ("fio", "w64k-qd4", "mib_per_s"), "higher", 0.7, "{:.0f}"),
    ("durable-8 mean round us vs fio 520k write+fdatasync mean iteration", ("bench", "durable-8", "mean_us"),
     ("fio", "w520k-sync", "iteration_mean_us"), "lower", None, "{:.0f}"),
    ("durable-8 p50 us vs fio 520k write+fdatasync p50", ("bench", "durable-8", "p50_us"),
     ("fio", "w520k-sync", "p50_us"), "lower", None, "{:.0f}"),
    ("durable-8 p99 us vs fio 520k write+fdatasync p99", ("bench", "durable-8", "p99_us"),
     ("fio", "w520k-sync", "p99_us"), "lower", 1.5, "{:.0f}"),
    ("durable-8 p99 us vs fio 64k write+fdatasync p99", ("bench", "durable-8", "p99_us"),
     ("fio", "w64k-sync", "p99_us"), "lower", None, "{:.0f}"),
    ("durable-1 mean round us vs fio 4k write+fdatasync mean iteration", ("bench", "durable-1", "mean_us"),
     ("fio", "w4k-sync", "iteration_mean_us"), "lower", None, "{:.0f}"),
    ("durable-1 mean round us vs fio 4k write+fdatasync mean iteration, growing file", ("bench", "durable-1", "mean_us"),
     ("fio", "w4k-sync-grow", "iteration_mean_us"), "lower", None, "{:.0f}"),
    ("durable-1 p50 us vs fio 4k write+fdatasync p50", ("bench", "durable-1", "p50_us"),
     ("fio", "w4k-sync", "p50_us"), "lower", None, "{:.0f}"),
    ("durable-1 p99 us vs fio 4k write+fdatasync p99", ("bench", "durable-1", "p99_us"),
     ("fio", "w4k-sync", "p99_us"), "lower", 1.5, "{:.0f}"),
    ("durable-1 p50 us vs fio 4k write+fdatasync p50, growing file", ("bench", "durable-1", "p50_us"),
     ("fio", "w4k-sync-grow", "p50_us"), "lower", None, "{:.0f}"),
    ("durable-1 p99 us vs fio 4k write+fdatasync p99, growing file", ("bench", "durable-1", "p99_us"),
     ("fio", "w4k-sync-grow", "p99_us"), "lower", None, "{:.0f}"),
    ("cold-read MiB/s vs fio seq read 1m qd8", ("bench", "cold-read", "mib_per_s"),
     ("fio", "r1m-qd8", "mib_per_s"), "higher", 0.85, "{:.0f}"),
    ("hot-read GiB/s (batch handles returned from the cache)", ("bench", "hot-read", "gib_per_s"),
     None, None, None, "{:.0f}"),
    ("CPU s per GiB appended, append-64k", ("bench", "append-64k", "cpu_s_per_gib"),
     None, None, None, "{:.3f}"),
    ("CPU s per GiB appended, append-1m", ("bench", "append-1m", "cpu_s_per_gib"),
     None, None, None, "{:.3f}"),
]

def fmt(spec, value):
    return "-" if value is None else spec.format(value)

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None

def verdict(kind, target, ratio):
    if target is None or ratio is None:
        return ""
    ok = ratio >= target if kind == "higher" else ratio <= target
    return "meets" if ok else "**misses**"

out = []
w = out.append
title_date = settings["started"][:10]
w(f"# Storage benchmark {title_date}: ringbus partition log vs fio\n")
if settings["quick"]:
    w("> **QUICK smoke run** (1 round, short jobs): not a measurement to quote.\n")
if noisy:
    w(f"> **Warning: other compilers were running during round(s) {', '.join(map(str, noisy))}** "
      "(see raw/…/quiet.txt). Figures taken while compiling are up to 2x worse, and much worse "
      "at the fsync tail; treat those rounds with suspicion.\n")
else:
    w("> No compiler was seen running before any job of this run (sampled before each job).\n")
w("## Run\n")
w(f"- Command: `{settings['invocation']}`")
w(f"- Commit: `{settings['commit']}`" + (" **(dirty: uncommitted changes, see raw/…/git-status.txt)**" if settings["dirty"] else ""))
w(f"- Date (UTC): {settings['started']} .. {settings['finished']}")
w(f"- Rounds: {settings['rounds']}; fio {settings['fio_seconds']} s per job, bench {settings['bench_seconds']} s per loop; "
  f"fio file {settings['fio_size']} (written in full before round 1); cold-read {settings['read_bytes']}")
w(f"- Raw data: `bench-results/raw/{settings['stem']}/` (fio JSON, bench stdout/stderr and commands, "
  "HdrHistogram logs `*.hlog`, machine.txt, quiet.txt)\n")
w("## Machine\n")
for key in ("cpu_model", "nproc", "memory", "kernel", "filesystem", "mount_options", "block_device",
            "queue", "transparent_hugepage", "memlock_limit_kib", "fio", "rustc", "bench_cpu"):
    w(f"- {key}: `{machine.get(key, '?')}`")
w("")
w("## Config\n")
config_line = ""
for r_dir in rounds:
    for path in sorted(glob.glob(os.path.join(r_dir, "bench-*.stderr"))):
        for line in open(path):
            if line.startswith("CONFIG "):
                config_line = line[7:].strip()
        if config_line:
            break
    if config_line:
        break
w(f"- ringbus `LogConfig` (defaults elsewhere): `{config_line}`; append-1m sets batch_bytes_max = 2 MiB; "
  "cold-read sets cache_bytes_max = 0; hot-read 256 MiB. Records carry 1 KiB values, null keys; "
  "64 KiB workloads use 64-record batches (66,173 bytes), 1 MiB ones 1024 records (1,058,813 bytes), "
  "durable-1 3 records (3,160 bytes, one 4 KiB block per sync). The glommio executor is pinned to one CPU.")
w(f"- fio common options: `{settings['fio_common']}`; jobs and their options are in the raw JSON "
  "(\"job options\"). All fio jobs but w4k-sync-grow run on the fully written fio file; "
  "w4k-sync-grow writes a fresh file preallocated with fallocate(KEEP_SIZE), so it grows with every write, as a log segment does.")
w("- fio write+fdatasync latency percentile = write latency percentile (submission + completion) + fdatasync latency "
  "percentile (fio reports the two separately, so this is an estimate; with a skewed fdatasync "
  "distribution the p50 sum understates the typical iteration). The mean iteration (1/IOPS) is exact "
  "and is compared with ringbus's mean round time (timed seconds / rounds).")
w("- Bench loops are closed-loop (max throughput / back-to-back rounds), not open-loop: "
  "their latencies are service times without queueing delay.\n")

w(f"## Summary (median of {len(data)} round(s))\n")
w("Each ratio is ringbus / fio of the same round; the median column is the median of the per-round values "
  "(ratios included), not a ratio of medians.\n")
w("| figure | ringbus | limit (fio) | ratio | target | |")
w("|---|---:|---:|---:|---:|---|")
per_round_rows = []
for label, ours, limit, kind, target, spec in rows:
    ours_values = [get(r, *ours) for r in data]
    limit_values = [get(r, *limit) if limit else None for r in data]
    ratios = [o / l if (o is not None and l) else None for o, l in zip(ours_values, limit_values)]
    m_ours, m_limit, m_ratio = median(ours_values), median(limit_values), median(ratios)
    target_text = "" if target is None else (f">= {target}" if kind == "higher" else f"<= {target}x")
    w(f"| {label} | {fmt(spec, m_ours)} | {fmt(spec, m_limit)} | {fmt('{:.2f}', m_ratio)} | {target_text} | {verdict(kind, target, m_ratio)} |")
    per_round_rows.append((label, spec, ours_values, limit_values, ratios, m_ours, m_limit, m_ratio, limit))
w("")

w("## Per round\n")
header = "| figure | " + " | ".join(f"round {i + 1}" for i in range(len(data))) + " | median |"
w(header)
w("|---|" + "---:|" * (len(data) + 1))
for label, spec, ours_values, limit_values, ratios, m_ours, m_limit, m_ratio, limit in per_round_rows:
    name = label.split(" vs ")[0]
    w(f"| ringbus {name} | " + " | ".join(fmt(spec, v) for v in ours_values) + f" | {fmt(spec, m_ours)} |")
    if limit:
        limit_name = label.split(" vs ")[1]
        w(f"| {limit_name} | " + " | ".join(fmt(spec, v) for v in limit_values) + f" | {fmt(spec, m_limit)} |")
        w(f"| ratio | " + " | ".join(fmt('{:.2f}', v) for v in ratios) + f" | {fmt('{:.2f}', m_ratio)} |")
w("| compilers seen (max count) | " + " | ".join(str(r["compilers_max"]) for r in data) + " | |")
w("")

w("## Details (medians over rounds)\n")
w("Where the time goes, from the bench's own counters. `device_*_bytes` come from /proc/self/io "
  "(bytes the process caused to be read from / written to the block layer).\n")
detail_rows = [
    ("append-64k append latency p50 / p99 / max us", "append-64k", ("append_p50_us", "append_p99_us", "append_max_us")),
    ("append-1m append latency p50 / p99 / max us", "append-1m", ("append_p50_us", "append_p99_us", "append_max_us")),
    ("append-64k device write bytes / batch bytes", "append-64k", ("device_write_bytes", "bytes")),
    ("append-64k segments used", "append-64k", ("segments",)),
    ("BytesMut clone (memcpy, outside the timed loop) GiB/s, append-64k / append-1m", None, None),
    ("durable-8 round split: append p50 / sync p50 / p99.9 / max us", "durable-8", ("append_p50_us", "sync_p50_us", "p999_us", "max_us")),
    ("durable-8 syncs/s, CPU s per GiB", "durable-8", ("syncs_per_s", "cpu_s_per_gib")),
    ("durable-1 round split: append p50 / sync p50 / p99.9 / max us", "durable-1", ("append_p50_us", "sync_p50_us", "p999_us", "max_us")),
    ("durable-1 syncs/s", "durable-1", ("syncs_per_s",)),
    ("cold-read device read bytes / batch bytes returned", "cold-read", ("device_read_bytes", "bytes")),
    ("cold-read CPU s per GiB, reads (calls), reopen ms", "cold-read", ("cpu_s_per_gib", "reads", "reopen_ms")),
    ("hot-read mean ns per read(offset, 1 MiB) call", "hot-read", ("read_ns_mean",)),
]
w("| figure | value |")
w("|---|---:|")
for label, name, keys in detail_rows:
    if name is None:
        a = median([get(r, "bench", "append-64k", "clone_gib_per_s") for r in data])
        b = median([get(r, "bench", "append-1m", "clone_gib_per_s") for r in data])
        w(f"| {label} | {fmt('{:.2f}', a)} / {fmt('{:.2f}', b)} |")
        continue
    values = [median([get(r, "bench", name, key) for r in data]) for key in keys]
    if "bytes" in keys and len(keys) == 2:
        text = "-" if None in values or not values[1] else f"{values[0] / values[1]:.2f} ({values[0] / 2**20:.0f} MiB / {values[1] / 2**20:.0f} MiB)"
    else:
        text = " / ".join(fmt("{:.0f}" if (v is not None and v >= 100) else "{:.3g}", v) for v in values)
    w(f"| {label} | {text} |")
w("")
w("fio detail per round (MiB/s; write latency p50/p99 us, submission + completion; fdatasync p50/p99 us; mean iteration us):\n")
w("| job | " + " | ".join(f"round {i + 1}" for i in range(len(data))) + " |")
w("|---|" + "---|" * len(data))
for job in ("w64k-qd4", "w1m-qd4", "w520k-sync", "w64k-sync", "w4k-sync", "w4k-sync-grow", "r1m-qd8"):
    cells = []
    for r in data:
        f = r["fio"].get(job)
        if not f:
            cells.append("-")
            continue
        cell = f"{f['mib_per_s']:.0f} MiB/s; lat {f['clat_p50_us']:.0f}/{f['clat_p99_us']:.0f}"
        if "sync_p50_us" in f:
            cell += f"; sync {f['sync_p50_us']:.0f}/{f['sync_p99_us']:.0f}; iter {f['iteration_mean_us']:.0f}"
        cells.append(cell)
    w(f"| {job} | " + " | ".join(cells) + " |")
w("")
with open(report, "w") as handle:
    handle.write("\n".join(out) + "\n")
PY
log "done: $report"
