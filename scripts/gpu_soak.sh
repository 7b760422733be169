#!/usr/bin/env bash
# One call on the GPU machine: the soak (scripts/soak.py, 10,000 frames at 512x512) alone on GPU 0,
# then the kill -9 / --resume check (scripts/resume_check.py, 1,000 frames at 512x512). With a
# second GPU, GPU 1 meanwhile measures the procedural renderer's speed per quality level
# (scripts/bench_synth.py) and the learned refiner against the classical one on held-out seeds
# (scripts/eval_refiner.py). Figures go to $OUT.
#
#   BUDGET=520 [PROFILE=1] [RESUME=0] SOAK_ARGS='--refiner learned --max-resident 2000000' [SOAK2_ARGS=...] bash scripts/gpu_soak.sh
#   (carry .whl and .carry)
set -u
BUDGET=${BUDGET:-520}
source scripts/gpu_env.sh || exit 1  # T0, el, OUT
left() { echo $((BUDGET - 20 - $(date +%s) + T0)); }
NGPU=$(python3 -c 'import torch; print(torch.cuda.device_count())')
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
# the CUDA-only tests first (graphs, checkpoints beside a graph warm-up), then (PROFILE=1) where a frame's
# time goes: synchronisations, copies and launches per stage (scripts/profile_generate.py)
CUDA_VISIBLE_DEVICES=0 timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_graphs.py tests/test_camera.py \
  > "$OUT/tests.txt" 2>&1
rc=$?; tail -n 3 "$OUT/tests.txt"
# on the GPU nothing may skip (these files are the CUDA tests' only run), and pytest's status is the verdict
echo "tests: pytest exit $rc, $(grep -c '^SKIPPED' "$OUT/tests.txt") skipped$( [ $rc -ne 0 ] && echo '  <-- FAILED')"
if [ -n "${PROFILE:-}" ]; then
  CUDA_VISIBLE_DEVICES=0 timeout 120 python3 scripts/profile_generate.py --device cuda --size 512x512 --refiner learned \
    --frames 400 --window 300 360 --top 8 --stage-ops other > "$OUT/profile.txt" 2>&1; grep "^#" "$OUT/profile.txt" | tail -n 26
fi
(
  export CUDA_VISIBLE_DEVICES=0
  timeout $(left) python3 scripts/soak.py --device cuda --no-video ${SOAK_ARGS:-} \
    --json "$OUT/soak.json" > "$OUT/soak.txt" 2>&1
  el "soak done"
  if [ "${RESUME:-1}" != 0 ]; then  # RESUME=0: skip it
    timeout $(left) python3 scripts/resume_check.py --device cuda > "$OUT/resume_check.txt" 2>&1
    el "resume check done"
  fi
  if [ -n "${SOAK2_ARGS:-}" ]; then  # a second soak, to compare settings
    timeout $(left) python3 scripts/soak.py --device cuda --no-video $SOAK2_ARGS \
      --json "$OUT/soak2.json" > "$OUT/soak2.txt" 2>&1
    el "second soak done"
  fi
) &
FIRST=$!
if [ "$NGPU" -gt 1 ]; then
  export CUDA_VISIBLE_DEVICES=1
  timeout ${SYNTH_S:-150} python3 scripts/bench_synth.py --device cuda > "$OUT/bench_synth.txt" 2>&1
  timeout $(left) python3 scripts/eval_refiner.py --device cuda --refiners classical refine/weights/refiner.pt \
    --seeds ${SEEDS:-1000001 1000002} --paths forward autopilot --frames 65 --size 256x256 \
    --out "$OUT/eval_refiner.json" > "$OUT/eval_refiner.txt" 2>&1
fi
wait $FIRST
for f in "$OUT"/*.txt; do echo "== $f"; grep -v -i -E "warn|package metadata" "$f" | tail -n 40; done
