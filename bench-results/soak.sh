#!/usr/bin/env bash
# The soak run (issue #15; not in CI): the broker for hours with long-lived clients that never
# reconnect, a long stretch with no client at all, and load, sampling the broker's RSS, CPU,
# open descriptors and publish p99 every minute. Writes bench-results/soak-<date>-<commit>.md
# with the per-minute table, a summary per phase, and every client's outcome.
#
# Phases (minutes; the first two are each longer than the 27.3 minutes after which glommio's
# waker count overflowed when a pending accept was re-polled 20 times a second):
#   connected  [CONNECTED_MIN]  loadgen (open loop RATE msg/s, a producer and a tailing
#              consumer, one connection each for the whole phase), a CLI producer (acks=all,
#              LINE_RATE lines/s) and a CLI group consumer on a second topic. No new connection
#              for the whole phase: the sampler reads /proc only, never the broker.
#   idle       [IDLE_MIN]       every client gone; the broker alone.
#   again      [AGAIN_MIN]      the same clients, new connections, then all stop.
# At the end: the broker must still be up, stop on SIGTERM with exit code 0, and every line the
# CLI producer sent must have been printed by a group consumer (at least once).
#
# Environment (defaults in brackets): DATA_DIR [/var/tmp], CONNECTED_MIN [70], IDLE_MIN [35],
# AGAIN_MIN [20], RATE [2000] msg/s, LINE_RATE [10], BROKER_CORES [0], CLIENT_CORES [1],
# PORT [29392], METRICS_PORT [29393], RINGBUS (a built binary) [target/release/ringbus, built].
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
invocation="$(printf '%q ' "$0" "$@")"
DATA_DIR=${DATA_DIR:-/var/tmp}
CONNECTED_MIN=${CONNECTED_MIN:-70}
IDLE_MIN=${IDLE_MIN:-35}
AGAIN_MIN=${AGAIN_MIN:-20}
RATE=${RATE:-2000}
LINE_RATE=${LINE_RATE:-10}
BROKER_CORES=${BROKER_CORES:-0}
CLIENT_CORES=${CLIENT_CORES:-1}
PORT=${PORT:-29392}
METRICS_PORT=${METRICS_PORT:-29393}
for var in DATA_DIR CONNECTED_MIN IDLE_MIN AGAIN_MIN RATE LINE_RATE BROKER_CORES CLIENT_CORES PORT METRICS_PORT RINGBUS; do
    if [[ -n "${!var:-}" ]]; then
        invocation="$var=$(printf '%q' "${!var}") $invocation"
    fi
done

log() { printf '[soak %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [[ -z "${RINGBUS:-}" ]]; then
    cargo build --release --locked -p cli --bin ringbus >&2
    RINGBUS=$repo/target/release/ringbus
fi
commit=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- . ':!bench-results' || commit="$commit-dirty"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench-results/soak-$stamp-$commit.md
raw=bench-results/raw/soak-$stamp-$commit
mkdir -p "$raw"
scratch=$(mktemp -d "$DATA_DIR/ringbus-soak.XXXXXX")
broker=127.0.0.1:$PORT
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf "$scratch"
}
trap cleanup EXIT

log "broker on cores $BROKER_CORES, data in $scratch, raw files in $raw"
# No Kafka listener: the soak drives the ringbus wire, and must not take 9092 (binaries from
# before the Kafka listener have no such option).
# shellcheck disable=SC2046 # the option is two words or none
taskset -c "$BROKER_CORES" "$RINGBUS" serve --data-dir "$scratch/data" --listen "$broker" \
    --cores "$BROKER_CORES" --metrics-listen "127.0.0.1:$METRICS_PORT" \
    $("$RINGBUS" serve --help | grep -q -- --kafka-listen && echo --kafka-listen none) \
    >"$raw/broker.out" 2>"$raw/broker.log" &
broker_pid=$!
pids+=("$broker_pid")
for _ in $(seq 100); do
    grep -q listening "$raw/broker.out" 2>/dev/null && break
    kill -0 "$broker_pid" || { log "the broker did not start"; cat "$raw/broker.log" >&2; exit 1; }
    sleep 0.1
done
# Background clients run as `taskset ... &` directly (not through a function), so that $! is
# the process itself (taskset execs ringbus) and a signal sent to it reaches ringbus.
client() { taskset -c "$CLIENT_CORES" "$RINGBUS" "$@"; }
# Bounded data: 256 MiB per partition in 64 MiB segments, so retention runs during the soak.
client topic create --broker "$broker" soak --partitions 8 \
    --retention-bytes $((256 << 20)) --segment-bytes $((64 << 20)) >/dev/null
client topic create --broker "$broker" soak-lines --partitions 2 >/dev/null

line_producer_pid=
line_generator_pid=
group_consumer_pid=
loadgen_pid=
# Starts the long-lived clients of a load phase; loadgen runs for `seconds`.
start_clients() {
    local phase=$1 seconds=$2
    taskset -c "$CLIENT_CORES" "$RINGBUS" loadgen --broker "$broker" --topic soak --producers 1 --consumers 1 \
        --rate "$RATE" --duration "$seconds" --warmup 5 --cores "$CLIENT_CORES" \
        --json "$raw/loadgen-$phase.json" >"$raw/loadgen-$phase.out" 2>"$raw/loadgen-$phase.log" &
    loadgen_pid=$!
    pids+=("$loadgen_pid")
    # Numbered lines at LINE_RATE per second through one long-lived producer connection. The
    # generator writes each line to the producer's FIFO, then to the list of lines sent.
    mkfifo "$raw/lines-$phase.fifo"
    taskset -c "$CLIENT_CORES" "$RINGBUS" produce --broker "$broker" --topic soak-lines --acks all <"$raw/lines-$phase.fifo" \
        >"$raw/producer-$phase.out" 2>"$raw/producer-$phase.log" &
    line_producer_pid=$!
    pids+=("$line_producer_pid")
    (
        n=0
        pause=$(awk "BEGIN { print 1 / $LINE_RATE }")
        while true; do
            echo "line-$phase-$n"
            echo "line-$phase-$n" >>"$raw/lines-sent.txt"
            n=$((n + 1))
            sleep "$pause"
        done
    ) >"$raw/lines-$phase.fifo" &
    line_generator_pid=$!
    pids+=("$line_generator_pid")
    taskset -c "$CLIENT_CORES" "$RINGBUS" consume --broker "$broker" --topic soak-lines --group soak-group \
        --session-timeout-ms 10000 --heartbeat-interval-ms 1000 \
        >"$raw/group-$phase.out" 2>"$raw/group-$phase.log" &
    group_consumer_pid=$!
    pids+=("$group_consumer_pid")
}
# Stops them: the line generator (its producer sees end of input, flushes and exits), the
# group consumer (SIGTERM: commits and leaves), and waits for loadgen's own end.
stop_clients() {
    local phase=$1 status
    kill "$line_generator_pid" 2>/dev/null || true
    wait "$line_generator_pid" 2>/dev/null || true
    status=0
    wait "$line_producer_pid" || status=$?
    echo "$status" >"$raw/producer-$phase.status"
    # The group consumer polls at most 500 ms: give it time to print the last lines.
    sleep 5
    kill -TERM "$group_consumer_pid" 2>/dev/null || true
    status=0
    wait "$group_consumer_pid" || status=$?
    echo "$status" >"$raw/group-$phase.status"
    status=0
    wait "$loadgen_pid" || status=$?
    echo "$status" >"$raw/loadgen-$phase.status"
}

samples=$raw/samples.csv
echo "minute,phase,rss_kib,cpu_pct,fds,threads,publish_p99_us,e2e_p99_us" >"$samples"
clock_ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$broker_pid/stat"; }
last_ticks=$(cpu_ticks)
minute=0
# The worst per-second p99 loadgen printed in the last minute (its live lines are per second).
recent_p99() {
    local log=$1 field=$2
    [[ -f "$log" ]] || { echo "-"; return; }
    tail -n 60 "$log" | grep measure | awk -v f="$field" '
        { for (i = 1; i <= NF; i++) if ($i == "p99") { n++; if (n == f) v = $(i + 1) } ; n = 0
          if (v + 0 > max) max = v + 0 }
        END { if (NR == 0) print "-"; else print max }'
}
sample() {
    local phase=$1 log=$2 ticks rss fds threads
    kill -0 "$broker_pid" || { log "the broker died"; exit 1; }
    ticks=$(cpu_ticks)
    rss=$(awk '/VmRSS/ { print $2 }' "/proc/$broker_pid/status")
    fds=$(ls "/proc/$broker_pid/fd" | wc -l)
    threads=$(awk '/Threads/ { print $2 }' "/proc/$broker_pid/status")
    cpu=$(awk "BEGIN { printf \"%.1f\", 100 * ($ticks - $last_ticks) / $clock_ticks / 60 }")
    last_ticks=$ticks
    minute=$((minute + 1))
    echo "$minute,$phase,$rss,$cpu,$fds,$threads,$(recent_p99 "$log" 1),$(recent_p99 "$log" 2)" >>"$samples"
    log "minute $minute $phase rss ${rss} KiB cpu ${cpu}% fds $fds"
}
run_phase() {
    local phase=$1 minutes=$2 log=$3
    for _ in $(seq "$minutes"); do
        sleep 60
        sample "$phase" "$log"
    done
}

log "phase connected: $CONNECTED_MIN min, no new connection"
start_clients connected $((CONNECTED_MIN * 60 - 20))
run_phase connected "$CONNECTED_MIN" "$raw/loadgen-connected.log"
stop_clients connected
log "phase idle: $IDLE_MIN min, no client"
run_phase idle "$IDLE_MIN" /nonexistent
log "phase again: $AGAIN_MIN min"
start_clients again $((AGAIN_MIN * 60 - 20))
run_phase again "$AGAIN_MIN" "$raw/loadgen-again.log"
stop_clients again

# Every line the producer sent was printed by a group consumer (at least once).
sort -u "$raw/lines-sent.txt" >"$raw/lines-sent-sorted.txt"
sent=$(wc -l <"$raw/lines-sent-sorted.txt")
cat "$raw"/group-*.out | grep -o 'line-[a-z]*-[0-9]*' | sort -u >"$raw/lines-consumed.txt" || true
consumed_lines=$(wc -l <"$raw/lines-consumed.txt")
missing_lines=$(comm -23 "$raw/lines-sent-sorted.txt" "$raw/lines-consumed.txt" | wc -l)
# Counted: the bulky line lists, the consumers' output and the FIFOs need not be kept.
rm -f "$raw"/lines-*.txt "$raw"/lines-*.fifo "$raw"/group-*.out
log "stopping the broker"
stop_started=$(date +%s.%N)
kill -TERM "$broker_pid"
broker_status=0
wait "$broker_pid" || broker_status=$?
stop_seconds=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $stop_started }")
panics=$(grep -c -i "panicked\|Waker invariant" "$raw/broker.log" || true)

python3 - "$samples" "$raw" "$out" <<EOF
import csv, json, statistics, sys, pathlib
samples, raw, out = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
rows = list(csv.DictReader(open(samples)))
def num(v):
    try: return float(v)
    except ValueError: return None
lines = []
w = lines.append
w("# Soak run $stamp ($commit)")
w("")
w("Command: \`$invocation\`")
w("")
w("Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r), data on $(df -T "$DATA_DIR" | awk 'NR == 2 { print $2 }').")
w("Broker on core(s) $BROKER_CORES, clients on $CLIENT_CORES; loadgen open loop $RATE msg/s of 1 KiB, 8 partitions (256 MiB retention each); a CLI producer at $LINE_RATE lines/s (acks=all) and a group consumer.")
w("")
w("## Outcome")
w("")
outcome = []
for phase in ("connected", "again"):
    status = (raw / f"loadgen-{phase}.status").read_text().strip()
    report = json.loads((raw / f"loadgen-{phase}.json").read_text()) if (raw / f"loadgen-{phase}.json").exists() else {}
    produced = report.get("produce", {}).get("messages", "?")
    consumed = report.get("consume", {}).get("messages", "?")
    detail = ", ".join(f"{k} {report.get(k, '?')}" for k in ("errors", "lost", "duplicates", "out_of_order"))
    outcome.append(f"- loadgen ({phase}): exit {status}; produced {produced}, consumed {consumed} (measured window); {detail}")
    outcome.append(f"- CLI producer ({phase}): exit {(raw / f'producer-{phase}.status').read_text().strip()}; group consumer ({phase}): exit {(raw / f'group-{phase}.status').read_text().strip()}")
outcome.append(f"- lines: $sent sent through the CLI producer, $consumed_lines distinct printed by the group consumers, $missing_lines sent but never printed")
outcome.append(f"- broker: up for the whole run, SIGTERM -> exit $broker_status in $stop_seconds s; panic lines in its log: $panics")
lines += outcome
w("")
w("## Per phase")
w("")
w("| phase | minutes | RSS MiB min / max | CPU % median (max) | fds min / max | publish p99 us median (max) | e2e p99 us median (max) |")
w("|---|---:|---|---|---|---|---|")
for phase in ("connected", "idle", "again"):
    rs = [r for r in rows if r["phase"] == phase]
    if not rs: continue
    rss = [num(r["rss_kib"]) / 1024 for r in rs]
    cpu = [num(r["cpu_pct"]) for r in rs]
    fds = [num(r["fds"]) for r in rs]
    def pct(key):
        v = [num(r[key]) for r in rs if num(r[key]) is not None]
        return f"{statistics.median(v):.0f} ({max(v):.0f})" if v else "-"
    w(f"| {phase} | {len(rs)} | {min(rss):.0f} / {max(rss):.0f} | {statistics.median(cpu):.1f} ({max(cpu):.1f}) | {min(fds):.0f} / {max(fds):.0f} | {pct('publish_p99_us')} | {pct('e2e_p99_us')} |")
w("")
w("## Every minute")
w("")
w("| minute | phase | RSS MiB | CPU % | fds | threads | publish p99 us | e2e p99 us |")
w("|---:|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    w(f"| {r['minute']} | {r['phase']} | {num(r['rss_kib']) / 1024:.0f} | {r['cpu_pct']} | {r['fds']} | {r['threads']} | {r['publish_p99_us']} | {r['e2e_p99_us']} |")
w("")
w("p99 columns: the worst of loadgen's per-second p99s in that minute. Raw files: \`$raw\`.")
pathlib.Path(out).write_text("\n".join(lines) + "\n")
EOF
log "report: $out"
failed=0
[[ "$broker_status" == 0 ]] || failed=1
[[ "$panics" == 0 ]] || failed=1
[[ "$missing_lines" == 0 ]] || failed=1
for phase in connected again; do
    [[ "$(cat "$raw/loadgen-$phase.status")" == 0 ]] || failed=1
    [[ "$(cat "$raw/producer-$phase.status")" == 0 ]] || failed=1
    [[ "$(cat "$raw/group-$phase.status")" == 0 ]] || failed=1
done
exit $failed
