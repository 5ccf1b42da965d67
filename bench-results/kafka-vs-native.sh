#!/usr/bin/env bash
# Rough cost of the Kafka listener's path vs the ringbus wire's (#12): the same N records of
# 100 bytes produced (acks all) and consumed once, by kcat over the Kafka protocol and by the
# `ringbus produce` / `consume` commands over the ringbus wire; wall time of each client and
# CPU time of the broker (utime + stime from /proc, clock ticks: 10 ms resolution). Broker on
# core 0, clients on core 1, 1 shard, 1 partition per topic, two rounds. Checks that both
# consumers print exactly the input. The clients differ (librdkafka vs ringbus's own), so the
# wall times compare tools; the broker's CPU per MB compares the two paths through it.
# Usage: BIN=target/release/ringbus N=1000000 bash bench-results/kafka-vs-native.sh
set -euo pipefail
BIN=${BIN:-target/release/ringbus}
N=${N:-1000000}
dir=$(mktemp -d /tmp/ringbus-measure.XXXX)
python3 -c "
import sys
line = ('x' * 90)
with open('$dir/records.txt', 'w') as f:
    for i in range($N):
        f.write('%09d %s\n' % (i, line))
"
taskset -c 0 "$BIN" serve --data-dir "$dir/data" --listen 127.0.0.1:29700 --kafka-listen 127.0.0.1:29701 --cores 0 >"$dir/out" 2>"$dir/log" &
pid=$!
for _ in $(seq 100); do grep -q "kafka listening" "$dir/out" 2>/dev/null && break; sleep 0.1; done
cpu() { awk '{print $14 + $15}' /proc/$pid/stat; }
hz=$(getconf CLK_TCK)
measure() { # label, command...
    local label=$1; shift
    local before after start end
    before=$(cpu); start=$(date +%s.%N)
    "$@"
    end=$(date +%s.%N); after=$(cpu)
    python3 -c "
wall = $end - $start; cpu = ($after - $before) / $hz
mb = $N * 100 / 1e6
print(f'{\"$label\":34s} wall {wall:6.2f} s  {mb/wall:7.1f} MB/s   broker cpu {cpu:6.2f} s  {cpu/mb*1000:6.2f} ms/MB')"
}
for round in 1 2; do
    t=r$round
    "$BIN" topic create native-$t --partitions 1 --broker 127.0.0.1:29700 >/dev/null
    "$BIN" topic create kafka-$t --partitions 1 --broker 127.0.0.1:29700 >/dev/null
    measure "produce ringbus (native, acks all)" taskset -c 1 sh -c "\"$BIN\" produce --topic native-$t --broker 127.0.0.1:29700 < $dir/records.txt"
    measure "produce kcat (kafka, acks all)" taskset -c 1 kcat -b 127.0.0.1:29701 -P -t kafka-$t -l "$dir/records.txt"
    measure "consume ringbus (native)" taskset -c 1 sh -c "\"$BIN\" consume --topic native-$t --broker 127.0.0.1:29700 --from-beginning --max-messages $N > $dir/native.out"
    measure "consume kcat (kafka)" taskset -c 1 sh -c "kcat -b 127.0.0.1:29701 -C -t kafka-$t -o beginning -e -q > $dir/kafka.out"
    cmp "$dir/native.out" "$dir/records.txt" && cmp "$dir/kafka.out" "$dir/records.txt" && echo "round $round: both consumed outputs equal the input"
done
kill $pid; wait $pid || true
rm -rf "$dir"
