#!/bin/bash
# catchup-shape.sh RINGBUS PARTS [MIB]: writes MIB (768) of 1 KiB messages over PARTS partitions with no consumer
# (broker core 0, loadgen core 1, 16 KiB batches, acks=1), then reads them from the earliest offset;
# prints both rates, the data disk's bytes read and the broker's CPU ticks during the read. Used for
# the catch-up A/Bs of perf-log.md (2026-12-07 morning): pass binary a, then b, alternating.
rb=$1; parts=$2; mib=${3:-768}; out=${OUT_DIR:-/tmp}/catchup-$(basename $rb)-$parts; rm -rf $out; mkdir -p $out
data=/var/tmp/prof-data; rm -rf $data; mkdir -p $data
$rb serve --listen 127.0.0.1:29393 --cores 0 --data-dir $data --kafka-listen none >$out/broker.log 2>&1 &
bp=$!
for i in $(seq 100); do grep -q "listening on" $out/broker.log && break; sleep 0.1; done
common="--broker 127.0.0.1:29393 --cores 1 --message-size 1024 --batch-bytes 16384 --linger-ms 5 --warmup 0 --topic backlog --acks 1 --duration 3600 --messages $((mib*1024))"
$rb loadgen $common --create-topic --partitions $parts --producers 1 --consumers 0 >$out/w.txt 2>$out/w.log
dev=$(df /var/tmp | tail -1 | awk '{print $1}' | sed 's#/dev/##')
d0=$(grep " $dev " /proc/diskstats | awk '{print $6}'); b0=$(awk '{print $14+$15}' /proc/$bp/stat)
$rb loadgen $common --producers 0 --consumers 1 --from-earliest >$out/r.txt 2>$out/r.log
d1=$(grep " $dev " /proc/diskstats | awk '{print $6}'); b1=$(awk '{print $14+$15}' /proc/$bp/stat)
kill $bp; wait $bp
echo "$(basename $rb) parts=$parts write: $(grep '^produce' $out/w.txt | awk '{print $4}') MiB/s; read: $(grep '^consume' $out/r.txt | awk '{print $4}') MiB/s, disk read $(( (d1-d0)*512/1048576 )) MiB, broker cpu ticks $((b1-b0))"
