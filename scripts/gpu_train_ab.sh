#!/usr/bin/env bash
# One call on a 2-GPU machine: two variants of the refiner's training side by side, one per GPU
# (PER_GPU processes each), both resuming from .carry/refiner/checkpoint-compact.pt (else the
# committed weights), so a choice between loss settings is made on measured figures.
#
#   A_ARGS="--loss.detail 5" B_ARGS="--loss.detail 20" BUDGET=560 bash scripts/gpu_train_ab.sh
#
# Packs into $OUT: a.ckpt.partNN, b.ckpt.partNN (compact checkpoints, <= 15 MB parts), logs.tar.gz.
set -u
BUDGET=${BUDGET:-560}
PER_GPU=${PER_GPU:-3}
source scripts/gpu_env.sh || exit 1  # T0, el, DEADLINE, OUT
START=refine/weights/refiner.pt
[ -f .carry/refiner/checkpoint-compact.pt ] && START=.carry/refiner/checkpoint-compact.pt
for v in a b; do
  rm -rf runs/gpu/$v && mkdir -p runs/gpu/$v && cp $START runs/gpu/$v/checkpoint-compact.pt
  ARGS=$([ $v = a ] && echo "${A_ARGS:-}" || echo "${B_ARGS:-}")
  GPU=$([ $v = a ] && echo 0 || echo 1)
  el "variant $v on GPU $GPU: $ARGS"
  CUDA_VISIBLE_DEVICES=$GPU timeout -s KILL $((BUDGET - 15)) torchrun --standalone \
    --nproc_per_node $PER_GPU -m worldgen.cli train --preset train-refiner-h200 --out runs/gpu/$v --deadline "$DEADLINE" \
    $ARGS > runs/gpu/$v.log 2>&1 &
done
wait
for v in a b; do
  el "variant $v"; grep '^{' runs/gpu/$v.log | tail -n 2
  [ -f runs/gpu/$v/checkpoint-compact.pt ] && split -b 15M -d runs/gpu/$v/checkpoint-compact.pt "$OUT/$v.ckpt.part"
done
tar czf "$OUT/logs.tar.gz" runs/gpu/*.log runs/gpu/*/log.jsonl runs/gpu/*/*.png runs/gpu/*/train.json \
  $(ls runs/gpu/*/samples/*.png 2>/dev/null) 2>/dev/null
ls -la "$OUT"
el "done"
