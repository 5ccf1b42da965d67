#!/usr/bin/env bash
# disk-of.sh DIR: the name of the whole disk that holds DIR (a partition's parent: vda for
# vda1), found through DIR's device number; exits 1 when DIR is on no block device (tmpfs,
# overlay). md/dm are not followed: `ringbus tune check --data-dir` does that. Used by run.sh,
# tuning-bench.sh and ab-rounds.sh to find the request queue (/sys/block/NAME/queue) to tune.
set -euo pipefail
devpath=$(readlink -f "/sys/dev/block/$(stat -c '%Hd:%Ld' "$1")")
[[ -e "$devpath" ]] || exit 1
if [[ -e "$devpath/partition" ]]; then
    devpath=$(dirname "$devpath")
fi
basename "$devpath"
