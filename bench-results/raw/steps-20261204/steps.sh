#!/usr/bin/env bash
# steps.sh: each build at a fixed rate (250k msg/s) and closed loop; two rounds alternating
for round in 1 2; do
for b in base appendall fetch slice readsfirst nozero; do
  for w in rate max; do
    if [ $w = rate ]; then extra="--rate 250000"; else extra=""; fi
    out=$(./probe.sh /tmp/probe/ringbus-$b --partitions 16 --batch-bytes 16384 --linger-ms 5 $extra)
    bcpu=$(echo "$out" | awk '/ringbus-shard-0/{print $5}')
    lcpu=$(echo "$out" | awk '/loadgen-1-2/{print $5}')
    prod=$(echo "$out" | awk '/^produce /{print $4}')
    cons=$(echo "$out" | awk '/^consume /{print $4}')
    pub=$(echo "$out" | awk '/^publish /{print $2, $4}')
    e2e=$(echo "$out" | awk '/^end-to-end /{print $2, $4}')
    fet=$(echo "$out" | awk '/^fetch /{print $2, $4}')
    sfet=$(grep -E 'fetch_latency_seconds\{shard="0",quantile="0.5"\}' metrics.txt | awk '{print $2}')
    echo "$round $b $w broker=$bcpu loadgen=$lcpu produce=$prod consume=$cons publish_p50_p99=$pub e2e_p50_p99=$e2e fetch_p50_p99=$fet server_fetch_p50=$sfet"
  done
done
done
