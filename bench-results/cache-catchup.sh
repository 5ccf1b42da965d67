#!/bin/bash
# cache-catchup.sh BIN: write 200 MiB over 16 partitions, drop the page cache, read it all back
# from the start; prints the MiB read from the data disk during the read and its rate (how
# much of a backlog the batch caches held; perf-log.md 2026-12-06, 41a5b51). Needs root.
rb=$1; out=/tmp/cache-catchup-$(basename $rb); rm -rf $out; mkdir -p $out
data=/var/tmp/prof-data; rm -rf $data; mkdir -p $data
dev=$(basename $(df --output=source /var/tmp | tail -1))
$rb serve --listen 127.0.0.1:29393 --cores 0 --data-dir $data --kafka-listen none >$out/broker.log 2>&1 &
bp=$!
for i in $(seq 100); do grep -q "listening on" $out/broker.log && break; sleep 0.1; done
common=(loadgen --broker 127.0.0.1:29393 --cores 1 --message-size 1024 --batch-bytes 16384 --linger-ms 5 --warmup 0 --topic t --acks 1 --rate 0 --duration 600 --messages 204800)
$rb "${common[@]}" --create-topic --partitions 16 --producers 1 --consumers 0 --json $out/w.json >/dev/null 2>&1
sync; echo 3 > /proc/sys/vm/drop_caches
r0=$(awk -v d=$dev '$3==d {print $6}' /proc/diskstats)
$rb "${common[@]}" --producers 0 --consumers 1 --from-earliest --json $out/r.json >/dev/null 2>&1
r1=$(awk -v d=$dev '$3==d {print $6}' /proc/diskstats)
kill -TERM $bp; wait $bp; rm -rf $data
echo "$(basename $rb): disk read during catch-up $(( (r1-r0)*512/1048576 )) MiB; consume $(python3 -c "import json;print(json.load(open('$out/r.json'))['consume']['mib_per_s'])") MiB/s"
