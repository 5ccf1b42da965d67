#!/usr/bin/env bash
# Kafka listener vs ringbus wire at full speed (#12): closed-loop produce of 1 KiB messages to a
# 16-partition topic, acks=1, by librdkafka (bench-results/kafka-perf/rdkafka_bench.c, standing
# in for rdkafka_performance) against the Kafka listener and by `ringbus loadgen` (producers 1,
# consumers 0) against the ringbus wire, at the same batching: 16 KiB batches, linger 5 ms, and
# 1 MiB batches (librdkafka's default batch.size), linger 5 ms. Broker on core 0 (one shard),
# client on core 1; ROUNDS rounds alternate the paths. Reports MiB/s, broker and client cores
# busy and broker CPU-seconds per GiB; then each path reads back a topic it wrote (librdkafka
# consumer, 2M messages; ringbus `consume` to /dev/null) as a rough consume figure.
# Needs librdkafka-dev (cc ... -lrdkafka). Usage:
#   BIN=target/release/ringbus ROUNDS=3 DUR=10 bash bench-results/kafka-vs-native-perf.sh
set -euo pipefail
BIN=$(realpath "${BIN:-target/release/ringbus}")
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-10}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /var/tmp/ringbus-kvn.XXXX)
trap 'pkill -f "listen 127.0.0.1:29720" || true; rm -rf "$work"' EXIT
cc -O2 -o "$work/rdkafka_bench" "$here/kafka-perf/rdkafka_bench.c" -lrdkafka
hz=$(getconf CLK_TCK)

start_broker() {
    rm -rf "$work/data"
    taskset -c 0 "$BIN" serve --data-dir "$work/data" --listen 127.0.0.1:29720 \
        --kafka-listen 127.0.0.1:29721 --cores 0 >"$work/out" 2>"$work/log" &
    broker=$!
    for _ in $(seq 100); do grep -qs "kafka listening" "$work/out" && break; sleep 0.1; done
    "$BIN" topic create t --partitions 16 --broker 127.0.0.1:29720 >/dev/null
}
stop_broker() { kill -TERM "$broker"; wait "$broker" || true; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run LABEL BATCH PATH: one measured produce; prints a table row.
run() {
    local label=$1 batch=$2 path=$3 b0 b1 t0 t1 mib
    start_broker
    b0=$(ticks "$broker"); t0=$(date +%s.%N)
    if [ "$path" = kafka ]; then
        taskset -c 1 /usr/bin/time -f '%U %S' -o "$work/time" "$work/rdkafka_bench" produce \
            127.0.0.1:29721 t 1024 "$DUR" 2 acks=1 linger.ms=5 batch.size="$batch" \
            >"$work/result.json"
        mib=$(python3 -c "import json; print(json.load(open('$work/result.json'))['mib_per_s'])")
    else
        taskset -c 1 /usr/bin/time -f '%U %S' -o "$work/time" "$BIN" loadgen \
            --broker 127.0.0.1:29720 --topic t --producers 1 --consumers 0 --message-size 1024 \
            --batch-bytes "$batch" --linger-ms 5 --acks 1 --duration "$DUR" --warmup 2 \
            --json "$work/result.json" >/dev/null 2>&1
        mib=$(python3 -c "import json; print(json.load(open('$work/result.json'))['produce']['mib_per_s'])")
    fi
    t1=$(date +%s.%N); b1=$(ticks "$broker")
    python3 - "$label" "$mib" "$b0" "$b1" "$t0" "$t1" "$hz" "$(cat "$work/time")" <<'PY'
import sys
label, mib, b0, b1, t0, t1, hz, client = sys.argv[1:]
wall = float(t1) - float(t0)
broker = (int(b1) - int(b0)) / int(hz)
u, s = map(float, client.split())
# Broker CPU over the whole run (warm-up included) per GiB at the measured rate.
gib = float(mib) / 1024 * wall
print(f"| {label} | {float(mib):.1f} | {broker / wall:.2f} | {(u + s) / wall:.2f} | {broker / gib:.2f} |")
PY
    stop_broker
}

echo "| run | produce MiB/s | broker cores | client cores | broker CPU-s per GiB |"
echo "|---|---:|---:|---:|---:|"
for round in $(seq "$ROUNDS"); do
    for batch in 16384 1048576; do
        run "r$round native, batch $batch" "$batch" native
        run "r$round kafka (librdkafka), batch.size $batch" "$batch" kafka
    done
done

# Consume, once: each path reads back 2,000,000 messages (1.95 GiB) it wrote.
start_broker
"$BIN" loadgen --broker 127.0.0.1:29720 --topic t --producers 1 --consumers 0 --acks 1 \
    --rate 0 --duration 4 --warmup 0 --json "$work/fill.json" >/dev/null 2>&1
count=$(python3 -c "import json; j=json.load(open('$work/fill.json')); print(min(2000000, int(j['produce']['messages'])))" 2>/dev/null || echo 1000000)
t0=$(date +%s.%N)
taskset -c 1 "$work/rdkafka_bench" consume 127.0.0.1:29721 t 1024 "$count" >"$work/consume.json"
t1=$(date +%s.%N)
echo "kafka consume of $count messages: $(cat "$work/consume.json") (wall $(python3 -c "print(round($t1-$t0,2))") s, group join included)"
t0=$(date +%s.%N)
taskset -c 1 "$BIN" consume --broker 127.0.0.1:29720 --topic t --from-beginning \
    --max-messages "$count" >/dev/null
t1=$(date +%s.%N)
python3 -c "print('native consume (ringbus consume > /dev/null) of $count messages: %.1f MiB/s' % ($count * 1024 / 1048576 / ($t1 - $t0)))"
stop_broker
