#!/usr/bin/env bash
# One quick diagnostic run (issue #11's "where is the bottleneck" questions), not a benchmark
# report: starts `BIN serve` on core 0 with a fresh data directory, runs `BIN loadgen` on core
# 1 (1 KiB messages, 1 producer, 1 consumer, acks=1, 3 s warm-up, 12 s measured, plus the
# loadgen arguments given), and prints, over 5 s in the middle of the measured window: CPU of
# every broker and loadgen thread (user and sys, from /proc/PID/task), context switches, disk
# busy %, average queue depth and writes/s (/proc/diskstats), then loadgen's summary. The
# broker's /metrics (server-side produce and fetch latency) is saved to $OUT/metrics.txt.
#
# Usage: bench-results/probe.sh BIN [loadgen args...]
#   e.g. bench-results/probe.sh target/release/ringbus --partitions 16 --batch-bytes 16384 --linger-ms 5 --rate 250000
# Environment: OUT [/tmp/ringbus-probe], BROKER_ARGS (extra serve arguments), PORT [29555],
# DATA_DIR [/var/tmp].
set -u
BIN=$(realpath "$1"); shift
OUT=${OUT:-/tmp/ringbus-probe}
PORT=${PORT:-29555}
mkdir -p "$OUT"
data=$(mktemp -d "${DATA_DIR:-/var/tmp}/ringbus-probe.XXXX")
# shellcheck disable=SC2086 # BROKER_ARGS is a list of words
# No Kafka listener unless BROKER_ARGS asks for one (binaries from before it have no option).
kafka_off=$("$BIN" serve --help | grep -q -- --kafka-listen && echo --kafka-listen none || true)
case "${BROKER_ARGS:-}" in *--kafka-listen*) kafka_off="" ;; esac
# shellcheck disable=SC2086 # BROKER_ARGS and kafka_off are lists of words
taskset -c 0 "$BIN" serve --listen "127.0.0.1:$PORT" --cores 0 --data-dir "$data" \
    --metrics-listen "127.0.0.1:$((PORT + 1))" $kafka_off ${BROKER_ARGS:-} >"$OUT/broker.log" 2>&1 &
broker=$!
sleep 1.5
taskset -c 1 "$BIN" loadgen --broker "127.0.0.1:$PORT" --cores 1 --message-size 1024 --topic t \
    --create-topic --producers 1 --consumers 1 --acks 1 --warmup 3 --duration 12 "$@" \
    >"$OUT/loadgen.log" 2>&1 &
loadgen=$!
sleep 6
threads() {
    for pid in $broker $loadgen; do
        for task in /proc/"$pid"/task/*; do
            echo "$pid $(basename "$task") $(tr ' ' _ <"$task/comm") \
$(awk '{print $14, $15}' "$task/stat") \
$(grep -E '^(voluntary|nonvoluntary)_ctxt' "$task/status" | awk '{s+=$2} END {print s}')"
        done
    done
}
disk() { awk '$3=="vda"||$3=="sda"||$3=="nvme0n1"{print $3, $8, $13, $14}' /proc/diskstats; }
threads >"$OUT/threads0"; disk >"$OUT/disk0"; t0=$(date +%s.%N)
sleep 5
threads >"$OUT/threads1"; disk >"$OUT/disk1"; t1=$(date +%s.%N)
python3 - "$OUT" "$t0" "$t1" <<'PY'
import os, sys
out, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
dt = t1 - t0
tick = os.sysconf("SC_CLK_TCK")
before = {tuple(l.split()[:2]): l.split() for l in open(f"{out}/threads0")}
for line in open(f"{out}/threads1"):
    f = line.split()
    b = before.get(tuple(f[:2]))
    if not b:
        continue
    user = (int(f[3]) - int(b[3])) / tick / dt
    sys_ = (int(f[4]) - int(b[4])) / tick / dt
    switches = (int(f[5]) - int(b[5])) / dt
    if user + sys_ > 0.005 or switches > 10:
        print(f"pid {f[0]} {f[2]:<20} cpu {user + sys_:5.2f} (user {user:4.2f} sys {sys_:4.2f})  ctxsw/s {switches:8.0f}")
d0, d1 = open(f"{out}/disk0").read().split(), open(f"{out}/disk1").read().split()
if d0 and d1:
    print(f"disk {d1[0]} busy {(int(d1[2]) - int(d0[2])) / dt / 10:.0f}%  avg qd {(int(d1[3]) - int(d0[3])) / dt / 1000:.2f}  writes/s {(int(d1[1]) - int(d0[1])) / dt:.0f}")
PY
curl -s "127.0.0.1:$((PORT + 1))/metrics" >"$OUT/metrics.txt"
wait $loadgen
kill -TERM $broker
wait $broker
rm -rf "$data"
grep -A9 '^window' "$OUT/loadgen.log"
