#!/usr/bin/env bash
# Training speed of two code revisions on one GPU machine, arm after arm in one call (machines differ by up to a third
# from call to call, so only arms of one call compare). Arm A runs the files as they were at REV, arm B as they are
# in the working tree; everything else is the working tree's. The depth network's training is the workload: the
# clouds preset from the committed refine/weights/depth.pt (step 9,000), a cache of 8 flights.
#
#   bash scripts/gpu_speed_ab.sh prepare dc82055 refine/train/depth.py   (here: REV's copies into runs/ab/old/)
#   ARMS="A B" ARM_S=130 bash scripts/gpu_speed_ab.sh run                (there; carry .whl, .carry/photos, runs/ab)
#
# Prints per arm the steps/s and GPU busy share (medians of the log intervals after the first two) and sends each
# arm's log back as $OUT/ARM.SECONDS.jsonl. 2026-12-04 (fourth session): the blocking uploads and channels_last of
# the depth trainer, 15.2 -> 18.5 steps/s (BENCHMARKS.md).
set -u
if [ "${1:-}" = prepare ]; then
  REV=${2:?prepare REV FILE...}; shift 2
  rm -rf runs/ab/old && mkdir -p runs/ab/old
  for f in "$@"; do
    mkdir -p "runs/ab/old/$(dirname "$f")" && git show "$REV:$f" > "runs/ab/old/$f" || exit 1
    cp "$f" "runs/ab/old/$f.new"
  done
  echo "runs/ab/old: $(cd runs/ab/old && find . -name '*.py' ! -name '*.new' | wc -l) file(s) of $REV; carry runs/ab"
  exit 0
fi
[ "${1:-}" = run ] || { echo "usage: gpu_speed_ab.sh prepare REV FILE... | run"; exit 2; }
[ -d runs/ab/old ] || { echo "gpu_speed_ab.sh: no runs/ab/old (run prepare here, and carry runs/ab)"; exit 1; }
export BUDGET=${BUDGET:-400} MARGIN=0
GSPLAT_LATER=1 source scripts/gpu_env.sh || exit 1
FILES=$(cd runs/ab/old && find . -name '*.py' ! -name '*.new' | sed 's|^\./||')
for arm in ${ARMS:-A B}; do
  for f in $FILES; do
    if [ "$arm" = A ]; then cp "runs/ab/old/$f" "$f"; else cp "runs/ab/old/$f.new" "$f"; fi
  done
  rm -rf "runs/ab/$arm" && mkdir -p "runs/ab/$arm" && cp refine/weights/depth.pt "runs/ab/$arm/checkpoint-compact.pt"
  timeout -s KILL "${ARM_S:-120}" python3 -m worldgen.cli train-depth --preset train-depth-h200-clouds --out "runs/ab/$arm" \
    --photos .carry/photos --steps 12000 --data.flights 8 --deadline $(( $(date +%s) + ${ARM_S:-120} - 15 )) \
    --log-every 50 > "runs/ab/$arm.log" 2>&1
  el "arm $arm"; grep -v -i warn "runs/ab/$arm.log" | grep -v "^worldgen" | sed -n '1p;$p'
  python3 - "$arm" <<'PY'
import json, statistics as st, sys
arm = sys.argv[1]
logs = [json.loads(line) for line in open(f"runs/ab/{arm}/log.jsonl")][2:]
print(arm, len(logs), "logs; steps/s median", st.median(r["steps_per_second"] for r in logs),
      "GPU busy median", st.median(r.get("gpu_util", 0) for r in logs))
PY
  cp "runs/ab/$arm/log.jsonl" "$OUT/$arm.$(date +%s).jsonl"
done
for f in $FILES; do cp "runs/ab/old/$f.new" "$f"; done
