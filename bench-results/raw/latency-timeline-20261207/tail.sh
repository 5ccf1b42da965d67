#!/bin/bash
# 30 s at 260k msg/s; per second: loadgen's live p99 line, disk writes/s, avg write latency, broker minflt, RSS
out=/tmp/tail; rm -rf $out; mkdir -p $out
data=/var/tmp/prof-data; rm -rf $data; mkdir -p $data
rb=/work/main/target/release/ringbus
$rb serve --listen 127.0.0.1:29393 --cores 0 --data-dir $data --kafka-listen none >$out/broker.log 2>&1 &
bp=$!
for i in $(seq 100); do grep -q "listening on" $out/broker.log && break; sleep 0.1; done
$rb loadgen --broker 127.0.0.1:29393 --cores 1 --message-size 1024 --batch-bytes 16384 --linger-ms 5 --warmup 3 --json $out/lg.json --topic lat --create-topic --partitions 16 --producers 1 --consumers 1 --acks 1 --rate 260000 --duration 30 >$out/table.txt 2>$out/live.log &
lp=$!
dev=$(df /var/tmp | awk 'NR==2{print $1}' | sed 's|/dev/||; s|[0-9]*$||')
while kill -0 $lp 2>/dev/null; do
  echo "$(date +%s) $(awk -v d=$dev '$3==d{print $8, $11}' /proc/diskstats) $(awk '{print $10, $14+$15}' /proc/$bp/stat) $(awk '/VmRSS/{print $2}' /proc/$bp/status)" >> $out/samples.txt
  sleep 1
done
kill -TERM $bp; wait $bp; rm -rf $data
