#!/usr/bin/env bash
# One call on a 2-GPU machine: the soak (scripts/soak.py, 10,000 frames at 512x512) on GPU 0, and on
# GPU 1 the procedural renderer's speed per quality level (scripts/bench_synth.py) followed by the
# learned-vs-classical evaluation on held-out seeds (scripts/eval_refiner.py). Figures go to $OUT.
#
#   BUDGET=520 bash scripts/gpu_soak.sh        (carry .whl and .carry)
set -u
BUDGET=${BUDGET:-520}
source scripts/gpu_env.sh || exit 1  # T0, OUT
left() { echo $((BUDGET - 20 - $(date +%s) + T0)); }
CUDA_VISIBLE_DEVICES=0 timeout $(left) python3 scripts/soak.py --device cuda --no-video --json "$OUT/soak.json" \
  > "$OUT/soak.txt" 2>&1 &
SOAK=$!
export CUDA_VISIBLE_DEVICES=1
timeout ${SYNTH_S:-150} python3 scripts/bench_synth.py --device cuda > "$OUT/bench_synth.txt" 2>&1
timeout $(left) python3 scripts/eval_refiner.py --device cuda --refiners classical refine/weights/refiner.pt \
  --seeds ${SEEDS:-1000001 1000002} --paths forward autopilot --frames 65 --size 256x256 \
  --out "$OUT/eval_refiner.json" > "$OUT/eval_refiner.txt" 2>&1
wait $SOAK
for f in "$OUT"/*.txt; do echo "== $f"; grep -v -i -E "warn|package metadata" "$f" | tail -n 40; done
