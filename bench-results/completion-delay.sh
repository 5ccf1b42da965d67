#!/bin/bash
# completion-delay.sh NAME: how long the broker's O_DIRECT write completions wait for the kernel
# worker that finishes them (writes into fallocated, unwritten extents: iomap_dio_complete_work
# on a kworker of the core that took the disk's interrupt). Runs ab-shape.sh's loadgen shape
# (env as there: RB, PARTS, BATCH, LINGER, RATE, DUR; BC / LC the broker's / loadgen's core,
# default 0 / 1), records block, workqueue and io_uring tracepoints system-wide for TRACE_S
# seconds [0.5] in the middle of it, and prints: the share of time the disk had 0, 1, 2, ...
# requests in flight, and the delay from each write's completion at the device to the start of
# the next completion work. Used for perf-log.md, 2026-12-07 (late session). Needs root and perf.
set -u
name=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
out=/tmp/completion-delay/$name; rm -rf $out; mkdir -p $out
shape=$out/shape.sh
# ab-shape.sh with the consumer count and the cores taken from the environment.
sed -e 's/--consumers 1/--consumers ${CONSUMERS:-1}/' \
    -e 's/--cores 0 --data-dir/--cores ${BC:-0} --data-dir/' \
    -e 's/--broker 127.0.0.1:29393 --cores 1/--broker 127.0.0.1:29393 --cores ${LC:-1}/' \
    "$here/ab-shape.sh" >$shape
[ "$(grep -c 'CONSUMERS:-1\|BC:-0\|LC:-1' $shape)" -ge 2 ] || { echo "ab-shape.sh changed: update the substitutions" >&2; exit 1; }
OUT_DIR=$out bash $shape run plain "$@" >$out/shape.txt 2>&1 &
sp=$!
sleep $(( ${DUR:-10} / 2 + 2 ))
perf record -a -e block:block_rq_issue,block:block_rq_complete,workqueue:workqueue_execute_start \
    -o $out/trace.perf -- sleep ${TRACE_S:-0.5} >/dev/null 2>&1
wait $sp
grep -E "produce/mib|busy" $out/shape.txt
perf script -i $out/trace.perf 2>/dev/null | python3 -c '
import re, sys
events = []
for line in sys.stdin:
    m = re.search(r"\s(\d+\.\d+):\s+\S+:(\S+):(.*)", line)
    if m:
        events.append((float(m.group(1)), m.group(2), m.group(3)))
inflight, last, busy, completed, starts = 0, None, {}, [], []
for t, kind, rest in events:
    if kind in ("block_rq_issue", "block_rq_complete") and " W" in rest:
        if last is not None:
            busy[inflight] = busy.get(inflight, 0) + t - last
        last = t
        inflight = max(0, inflight + (1 if kind == "block_rq_issue" else -1))
        if kind == "block_rq_complete":
            completed.append(t)
    elif kind == "workqueue_execute_start" and "iomap_dio_complete_work" in rest:
        starts.append(t)
# Each write completed at the device, to the first completion work that starts after it (a
# tracepoint does not say which work belongs to which request; a write that needs none would
# count the time to the next one, so this errs long only when completions are sparse).
delays, j = [], 0
for t in completed:
    while j < len(starts) and starts[j] < t:
        j += 1
    if j < len(starts):
        delays.append(starts[j] - t)
span = sum(busy.values()) or 1
print("disk writes in flight, share of time:",
      ", ".join(f"{k}: {v / span:.2f}" for k, v in sorted(busy.items())))
delays.sort()
if delays:
    pick = lambda q: delays[min(len(delays) - 1, int(len(delays) * q))] * 1e3
    print(f"{len(delays)} write completions; device done -> next completion work starts, ms: "
          f"p50 {pick(0.5):.3f} p90 {pick(0.9):.3f} p99 {pick(0.99):.3f} max {delays[-1] * 1e3:.3f}")
'
