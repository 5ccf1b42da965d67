#!/bin/bash
# lg-window.sh NAME: one run of a loadgen shape against a fresh broker (broker core 0, loadgen core 1,
# 1 producer, 1 consumer, acks=1, 1 KiB messages) that prints throughput and, over a 6 s window
# inside the measured phase (from /proc/PID/stat), each process's cores busy and minor page faults
# per second. Env: RB (binary; LRB for the loadgen's if different), BENV / LENV (one VAR=value for
# the broker / loadgen, e.g. _RJEM_MALLOC_CONF=...), PARTS [16], BATCH [16384], LINGER [5], RATE [0 =
# closed loop], DUR [10]. Used for the A/Bs of perf-log.md, 2026-12-07 (afternoon).
set -u
name=$1; rb=${RB:-/tmp/rb-base}
out=/tmp/lg/$name; rm -rf $out; mkdir -p $out
data=/var/tmp/prof-data; rm -rf $data; mkdir -p $data
env ${BENV:-X=1} $rb serve --listen 127.0.0.1:29393 --cores 0 --data-dir $data --kafka-listen none ${SERVE_ARGS:-} >$out/broker.log 2>&1 &
bp=$!
for i in $(seq 100); do grep -q "listening on" $out/broker.log && break; sleep 0.1; done
env ${LENV:-X=1} ${LRB:-$rb} loadgen --broker 127.0.0.1:29393 --cores 1 --message-size 1024 --batch-bytes ${BATCH:-16384} --linger-ms ${LINGER:-5} --warmup 2 --json $out/lg.json --topic t --create-topic --partitions ${PARTS:-16} --producers 1 --consumers 1 --acks 1 --rate ${RATE:-0} --duration ${DUR:-10} >$out/table.txt 2>$out/live.log &
lp=$!
sleep 4
lpid=$(pgrep -P $lp ringbus || echo $lp); [ -d /proc/$lp ] && lpid=$lp
s0=$(awk '{print $14+$15, $10}' /proc/$bp/stat); l0=$(awk '{print $14+$15, $10}' /proc/$lpid/stat)
sleep 6
s1=$(awk '{print $14+$15, $10}' /proc/$bp/stat); l1=$(awk '{print $14+$15, $10}' /proc/$lpid/stat)
wait $lp
kill -TERM $bp; wait $bp; rm -rf $data
python3 - "$out" "$s0" "$s1" "$l0" "$l1" <<'PY'
import json,sys
out=sys.argv[1]; b0,f0=map(int,sys.argv[2].split()); b1,f1=map(int,sys.argv[3].split()); l0,g0=map(int,sys.argv[4].split()); l1,g1=map(int,sys.argv[5].split())
j=json.load(open(out+"/lg.json"))
def g(*p):
    d=j
    for k in p: d=d.get(k,{}) if isinstance(d,dict) else {}
    return d
print(f"prod {g('produce','mib_per_s'):.0f} cons {g('consume','mib_per_s'):.0f} MiB/s | broker {(b1-b0)/600:.2f} loadgen {(l1-l0)/600:.2f} cores (6 s window) | minflt/s broker {(f1-f0)/6:.0f} loadgen {(g1-g0)/6:.0f}")
PY
