#!/bin/bash
# ab-rounds.sh ROUNDS SIDE... : alternating A/B rounds of one ab-shape.sh shape, one line per
# run. A SIDE is `bin:PATH` (a ringbus binary) or `rq:N` (the data disk's rq_affinity, set
# before the run with the binary in $RB; put back to what it was at the end). Every run
# prints produce / consume MiB/s, both processes' cores busy and CPU ms per GiB moved, the
# reschedule (RES) and call-function (CAL) IPIs on core 0 during the run, and the publish and
# end-to-end percentiles (ms). A `bin:` side runs under whatever rq_affinity the disk has
# then. The shape comes from ab-shape.sh's environment (PARTS,
# PRODUCERS, BATCH, LINGER, RATE, DUR, ...). Used for perf-log.md, 2026-12-08:
#   PARTS=1000 bench-results/ab-rounds.sh 6 bin:/tmp/rb-main bin:/tmp/rb-coop
#   PARTS=1 BATCH=1048576 LINGER=1 RB=/tmp/rb-coop bench-results/ab-rounds.sh 3 rq:1 rq:2
#   RATE=350000 RB=/tmp/rb-coop bench-results/ab-rounds.sh 3 rq:1 rq:2
set -u
here=$(cd "$(dirname "$0")" && pwd)
rounds=$1; shift
# The disk under ab-shape.sh's data directory (/var/tmp/prof-data), for `rq:` sides.
rq_file="/sys/block/$("$here/disk-of.sh" /var/tmp)/queue/rq_affinity"
rq_before=""
set_rq() { # value: set it and read it back, or stop (a run labelled rq:N must have run so)
    [[ -z "$rq_before" ]] && { rq_before=$(cat "$rq_file") || exit 2; trap 'echo "$rq_before" >"$rq_file"' EXIT; }
    echo "$1" >"$rq_file" 2>/dev/null
    [[ "$(cat "$rq_file")" == "$1" ]] || { echo "could not set $rq_file to $1 (root?)" >&2; exit 2; }
}
ipis() { awk '/RES:/{r=$2} /CAL:/{c=$2} END{print r, c}' /proc/interrupts; }
for round in $(seq "$rounds"); do
    for side in "$@"; do
        rb=${RB:-$here/../target/release/ringbus}
        case $side in
            bin:*) rb=${side#bin:} ;;
            rq:*) set_rq "${side#rq:}" ;;
            *) echo "unknown side $side" >&2; exit 2 ;;
        esac
        read -r res0 cal0 < <(ipis)
        out=$(RB=$rb OUT_DIR=/tmp/ab-rounds "$here/ab-shape.sh" run plain 2>&1)
        read -r res1 cal1 < <(ipis)
        python3 - "$side" "$round" "$res1" "$res0" "$cal1" "$cal0" <<'PY' "$out"
import json, sys
side, rnd, res1, res0, cal1, cal0, out = sys.argv[1:8]
def grab(key):
    return float(next(l.split()[-1] for l in out.splitlines() if key in l))
lg, br = grab("loadgen cores busy"), grab("broker cores busy")
j = json.load(open("/tmp/ab-rounds/run/lg.json"))
moved = (j["produce"]["mib_per_s"] + j["consume"]["mib_per_s"]) / 1024
p, e = j["produce"]["latency_us"], j["e2e_latency_us"]
bad = j["errors"] + j["lost"] + j["duplicates"]
print(f"{side:<14} round {rnd}  produce {j['produce']['mib_per_s']:6.0f} consume {j['consume']['mib_per_s']:6.0f} MiB/s"
      f"  loadgen {lg:.2f} broker {br:.2f} busy, {1000*lg/moved:5.0f} / {1000*br/moved:5.0f} ms/GiB"
      f"  RES0 {int(res1)-int(res0)} CAL0 {int(cal1)-int(cal0)}"
      f"  publish p50/p99 {p['p50']/1000:.2f}/{p['p99']/1000:.1f} e2e p99 {e['p99']/1000:.1f} ms"
      + (f"  ERRORS/LOST/DUPS {bad}" if bad else ""))
PY
    done
done
