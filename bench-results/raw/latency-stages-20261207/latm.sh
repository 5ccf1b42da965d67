#!/bin/bash
# latency window with broker metrics scraped at the end. $1 binary suffix
b=$1; rb=/tmp/rb-$b; out=/tmp/lg/latm-$b; rm -rf $out; mkdir -p $out
data=/var/tmp/prof-data; rm -rf $data; mkdir -p $data
$rb serve --listen 127.0.0.1:29393 --cores 0 --data-dir $data --kafka-listen none --metrics-listen 127.0.0.1:29394 ${SERVE_ARGS:-} >$out/broker.log 2>&1 &
bp=$!
ds0=$(awk '$3=="vda"{print $8,$10,$11,$19,$20}' /proc/diskstats)
st0=$(awk '$1=="cpu"{print $9}' /proc/stat)
for i in $(seq 100); do grep -q "listening on" $out/broker.log && break; sleep 0.1; done
env ${LENV:-X=1} $rb loadgen --broker 127.0.0.1:29393 --cores 1 --message-size 1024 --batch-bytes ${BATCH:-16384} --linger-ms ${LINGER:-5} --warmup 2 --json $out/lg.json --topic t --create-topic --partitions ${PARTS:-16} --producers 1 --consumers ${CONS:-1} --acks 1 --rate ${RATE:-260000} --duration ${DUR:-12} ${LG_ARGS:-} >$out/table.txt 2>$out/live.log
ds1=$(awk '$3=="vda"{print $8,$10,$11,$19,$20}' /proc/diskstats)
st1=$(awk '$1=="cpu"{print $9}' /proc/stat)
curl -s http://127.0.0.1:29394/metrics > $out/metrics.txt
kill -TERM $bp; wait $bp; rm -rf $data
python3 -c "import sys;a=list(map(int,'$ds0'.split()));b=list(map(int,'$ds1'.split()));w=b[0]-a[0];f=b[3]-a[3];print(f'disk writes {w} avg {(b[2]-a[2])/max(w,1):.2f} ms, sectors/w {(b[1]-a[1])/max(w,1):.0f}, flushes {f} avg {(b[4]-a[4])/max(f,1):.1f} ms; ',end='')"
echo -n "steal $((st1-st0)) ticks; "
python3 - "$b" "$out" <<'PY'
import json,sys,re
b,out=sys.argv[1],sys.argv[2]
j=json.load(open(out+"/lg.json"))
p=j['produce']['latency_us']; e=j.get('e2e_latency_us') or {'p50':0,'p99':0}; d=j['publish_delay_us']
m=open(out+"/metrics.txt").read()
q={k:float(v)*1e3 for k,v in re.findall(r'ringbus_produce_latency_seconds\{shard="0",quantile="([0-9.]+)"\} ([0-9.e-]+)',m)}
s=re.search(r'ringbus_produce_latency_seconds_sum\{shard="0"\} ([0-9.e-]+)',m); c=re.search(r'ringbus_produce_latency_seconds_count\{shard="0"\} ([0-9]+)',m)
print(f"{b}: publish p50 {p['p50']/1e3:.1f} p99 {p['p99']/1e3:.1f} | e2e p50 {e['p50']/1e3:.1f} p99 {e['p99']/1e3:.1f} | delay p99 {d['p99']/1e3:.1f} ms | broker produce ms {q} mean {float(s.group(1))/int(c.group(1))*1e3:.2f} n {c.group(1)}")
PY
