#!/bin/bash
# ab-shape.sh NAME MODE [loadgen args...]: one run of the max-acks1 shape (broker core 0, loadgen
# core 1, 16 partitions, 1 producer, 1 consumer, acks=1, RATE msg/s or closed loop) with the
# binary RB; MODE plain (loadgen CPU from time), count (syscall counts via perf stat) or perf
# (dwarf call graphs of both processes for 5 s). Prints throughput and cores busy. Used for the
# A/B rounds of perf-log.md (2026-12-06): alternate two binaries, RB=a then RB=b, per round.
# Env: RB, DUR [10], RATE [0], PARTS [16], PRODUCERS [1], CONSUMERS [1], BATCH [16384], LINGER [5], FREQ [999],
# PERF_DELAY [3] (seconds before perf starts), SERVE_ARGS. Plain mode also prints the loadgen's minor faults.
set -u
name=$1; mode=$2; shift 2
rb=${RB:-$(cd "$(dirname "$0")/.." && pwd)/target/release/ringbus}
out=${OUT_DIR:-/tmp/ab-shape}/$name; rm -rf $out; mkdir -p $out
data=/var/tmp/prof-data; rm -rf $data; mkdir -p $data
$rb serve --listen 127.0.0.1:29393 --cores 0 --data-dir $data --kafka-listen none ${SERVE_ARGS:-} >$out/broker.log 2>&1 &
bp=$!
for i in $(seq 100); do grep -q "listening on" $out/broker.log && break; sleep 0.1; done
args=(loadgen --broker 127.0.0.1:29393 --cores 1 --message-size 1024 --batch-bytes ${BATCH:-16384} --linger-ms ${LINGER:-5} --warmup 2 --json $out/lg.json --topic t --create-topic --partitions ${PARTS:-16} --producers ${PRODUCERS:-1} --consumers ${CONSUMERS:-1} --acks 1 --rate ${RATE:-0} --duration ${DUR:-10} "$@")
b0=$(awk '{print $14+$15}' /proc/$bp/stat)
t0=$(date +%s.%N)
case $mode in
perf)
  $rb "${args[@]}" >$out/table.txt 2>$out/live.log &
  lp=$!
  sleep ${PERF_DELAY:-3}
  perf record -F ${FREQ:-999} -g --call-graph dwarf,16384 -p $lp -o $out/loadgen.perf -- sleep 5 >/dev/null 2>&1 &
  perf record -F ${FREQ:-999} -g --call-graph dwarf,16384 -p $bp -o $out/broker.perf -- sleep 5 >/dev/null 2>&1 &
  wait $lp
  /usr/bin/true;;
count)
  perf stat -e 'syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvfrom,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_write,syscalls:sys_enter_clock_gettime' -p $bp -o $out/broker-stat.txt &
  sp=$!
  perf stat -e 'syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvfrom,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_write' -o $out/loadgen-stat.txt -- $rb "${args[@]}" >$out/table.txt 2>$out/live.log
  kill -INT $sp; wait $sp;;
plain)
  /usr/bin/time -f '%U %S %R' -o $out/lgtime.txt $rb "${args[@]}" >$out/table.txt 2>$out/live.log;;
esac
t1=$(date +%s.%N)
b1=$(awk '{print $14+$15}' /proc/$bp/stat)
kill -TERM $bp; wait $bp; rm -rf $data
python3 - $out $b0 $b1 $t0 $t1 <<'PY'
import json,sys,os
out,b0,b1,t0,t1=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]),float(sys.argv[4]),float(sys.argv[5])
j=json.load(open(out+"/lg.json"))
def find(d,path=""):
    if isinstance(d,dict):
        for k,v in d.items(): yield from find(v,path+"/"+k)
    else: yield path,d
keys=[(p,v) for p,v in find(j) if any(s in p for s in ("mib_per_s","msgs_per_s","rate")) and not isinstance(v,list)]
for p,v in keys[:12]: print(p,v)
print("broker cores busy (whole run)", round((b1-b0)/100/(t1-t0),3))
if os.path.exists(out+"/lgtime.txt"):
    u,s,*f=map(float,open(out+"/lgtime.txt").read().split()); print("loadgen cores busy", round((u+s)/(t1-t0),3)); f and print("loadgen minor faults", int(f[0]))
PY
for f in $out/*-stat.txt; do [ -f $f ] && { echo $f; grep syscalls $f; }; done
