#!/usr/bin/env bash
# Idle CPU of a broker (issue #11: "an idle broker uses no CPU"): start `ringbus serve` on
# core 1 with one shard, create a 16-partition topic (so 24 partitions with the offsets
# topic), then measure its utime+stime over 60 s with no client. Usage: idle-cpu.sh BIN PORT
bin=$1; port=$2
dir=$(mktemp -d /var/tmp/idle.XXXX)
# No Kafka listener (binaries from before it have no such option).
kafka_off=$($bin serve --help | grep -q -- --kafka-listen && echo --kafka-listen none || true)
taskset -c 1 $bin serve --data-dir $dir --listen 127.0.0.1:$port --cores 1 $kafka_off > $dir/out 2>$dir/log &
pid=$!
sleep 2
$bin topic create --broker 127.0.0.1:$port idle --partitions 16 >/dev/null
sleep 5
t0=$(awk '{print $14+$15}' /proc/$pid/stat)
sleep 60
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
echo "$bin: $((t1-t0)) ticks (1/100 s) in 60 s idle"
kill $pid; wait $pid; rm -rf $dir
