#!/usr/bin/env bash
# One call on the GPU machine: train the learned refiner (torchrun over every GPU) and the depth
# network side by side, each resuming from the checkpoint carried in .carry/ when there is one, and
# pack what comes back into $OUT (checkpoints split into <= 15 MB parts, logs, curves, samples).
#
#   bash scripts/gpu_prepare.sh                            (here, once: wheels, photos, the carry's size)
#   BUDGET=560 PER_GPU=3 bash scripts/gpu_train.sh        (there; carry .whl and .carry)
#   PRESET=train-refiner-h200-fidelity DEPTH=0 PHOTO_STEPS=0 REFINER_ARGS='--loss.neg-psnr 0' ...   (the fidelity run
#     that made refiner.pt, step 4957)
#   FROM=refine/weights/refiner-fidelity.pt PRESET=train-refiner-h200-fidelity DEPTH=0 PHOTO_STEPS=0 ...  (its continuation)
#   SOAK_FIRST=3000 SOAK_ARGS='--max-resident 2000000' ... (a profile and a short soak first, GPU idle)
#   PROBE=1 ...                                            (scripts/probe_renderers.py first, GPU idle)
#   REFINER=0 DEPTH_PRESET=train-depth-h200-walks ...      (the depth network alone)
#   REFINER=0 DEPTH_PRESET=A DEPTH2_PRESET=B KEEP=200 KEEP_MAX=1 ...  (two depth runs side by side on one GPU, both from
#     refine/weights/depth.pt; the second comes back as depth2.*; DEPTH2_ARGS its options. The depth network's training
#     is host-bound, GPU 32-44 % busy alone, and the machine has 16 cores: side by side 8.9-9.4 steps/s each against
#     15 alone, ~1.25x the steps per device-minute, 2026-12-04 seventh session; on an H100 with the across data 8.9 and
#     9.1 steps/s side by side, GPU 83-88 % busy, 2026-12-05 sixth session; KEEP_MAX=1 keeps the four checkpoints
#     within the 64 MiB a call brings back; DEPTH2_FROM=FILE.pt continues the second run from its own checkpoint)
#
# .carry/ (ignored by git) may hold: gsplat_cuda.so.xz (gsplat's kernels, built by an earlier call, compressed),
# photos/ (real photos for the depth network's consistency term), refiner/ and depth/ (the compact
# checkpoints of the runs to continue). Everything the call makes stays under runs/gpu/. The call carries at most
# 64 MiB and the tracked tree is ~53 of them: with the wheels and gsplat's build there is no room for the depth
# network's 14.6-MB checkpoint in .carry/depth/, so a depth run continues by copying its returned checkpoint over
# refine/weights/depth.pt (and the refiner's over FROM's file) for the next call, and `git checkout` of both after.
# A refiner checkpoint with a photo critic is 12.8 MB, not 9.9: copied over refine/weights/refiner.pt it takes the call
# past 64 MiB, so move refine/weights/refiner-fidelity.pt out of the tree for such calls (2026-12-03, seventh session:
# .carry/photos at JPEG quality 82, 1.9 MiB, and the fidelity file moved out made it fit).
# A depth run anchored to the shipped network (--layout-from) that continues in a later call needs that network too:
# carry it as .carry/depth9000.pt (say) with DEPTH_ARGS='--layout-from .carry/depth9000.pt', and move both
# refine/weights/refiner*.pt out of the tree for the call (REFINER=0 needs neither; 2026-12-04, sixth session).
# A depth-only call (REFINER=0) may instead move docs/ (24 MiB of figures, read by no training) out of the tree for
# the call and keep both refiner files where they are: the carry is then ~44 MiB, and CPU jobs that fly with the
# shipped refiners meanwhile keep finding them (2026-12-05, fifth session).
# refine/weights/depth-fidelity.pt (14.7 MB, `--depth-model learned-fidelity` since 2026-12-05, eighth session) is also
# the depth checkpoint to continue from: move it out of the tree for a call too (after copying it over
# refine/weights/depth.pt where the call continues it); the tracked tree is ~76 MiB, docs/ ~27 of them.
# Both trainings stop at T0 + BUDGET - 40 s (their --deadline), packing is done by T0 + BUDGET.
set -u
BUDGET=${BUDGET:-560}
PER_GPU=${PER_GPU:-3}
REFINER_ARGS=${REFINER_ARGS:-}
DEPTH_ARGS=${DEPTH_ARGS:-}
GSPLAT_LATER=1 source scripts/gpu_env.sh || exit 1  # T0, el, DEADLINE, OUT, gsplat_warm (run below, once the depth network runs)
NGPU=$(python3 -c 'import torch; print(torch.cuda.device_count())')
nvidia-smi --query-gpu=index,name,memory.total,driver_version,utilization.gpu --format=csv
el "python $(python3 -c 'import sys, torch; print(sys.version.split()[0], torch.__version__)'), $NGPU GPU(s)"

# A warm machine keeps the last call's ignored files: its full checkpoint in runs/gpu/refiner would win over FROM and the
# carried compact one (2026-12-03: a call given FROM=refiner-fidelity.pt at step 7040 went on from the previous
# call's 7837 instead). Each call starts from what it is given, so runs/gpu starts empty.
rm -rf runs/gpu && mkdir -p runs/gpu/refiner runs/gpu/depth runs/gpu/depth2
# The logs and the last checkpoint come back even when the call is killed before packing (a BUDGET longer than the
# call's real limit: a cold start or a short device budget shortens it; the fifth session of 2026-12-02 lost 485 steps
# so): every 20 s the logs, and each compact checkpoint the training writes after the call's start (every
# compact_every steps), are copied into $OUT (each file whole, then renamed: a checkpoint of one part, < 15 MB,
# is never half there).
STAMP=/tmp/gpu_train.$$.start
send_checkpoint() {  # $1 = refiner | depth | depth2: its compact checkpoint into $OUT as $1.ckpt.partNN (<= 15 MB each; the
  # checkpoints are one part: the refiner's 9.9 MB, the depth network's 14.6; each part is copied whole, then renamed)
  rm -rf /tmp/snap.$1 && mkdir -p /tmp/snap.$1 && split -b 15M -d runs/gpu/$1/checkpoint-compact.pt /tmp/snap.$1/p &&
  put_parts $1 $1
}
put_parts() {  # $1 = refiner | depth, $2 = name: the parts of its last snapshot into $OUT as $2.ckpt.partNN
  for f in /tmp/snap.$1/p*; do cp "$f" "$OUT/tmp-$1" && mv "$OUT/tmp-$1" "$OUT/$2.ckpt.part${f##*/p}"; done
}
# KEEP=S: also keep, at most every S seconds and KEEP_MAX (3) times, the checkpoint just sent as
# $OUT/$k.keptN.ckpt.partNN, so the points of a run come back to be scored (and averaged) on the CPU beside its last
# one (a call returns 8 files at most: logs 2, the last checkpoint, logs.tar.gz, the kept ones).
keep_checkpoint() {
  [ -n "${KEEP:-}" ] || return 0
  local n; n=$(ls "$OUT" | grep -c "^$1[.]kept[0-9]*[.]ckpt[.]part00$")
  [ "$n" -lt "${KEEP_MAX:-3}" ] || return 0
  [ -f $STAMP.kept.$1 ] && [ $(( $(date +%s) - $(stat -c %Y $STAMP.kept.$1) )) -lt "$KEEP" ] && return 0
  touch $STAMP.kept.$1
  put_parts $1 $1.kept$n
}
( while sleep 20; do for k in refiner depth depth2; do
    [ -f runs/gpu/$k/log.jsonl ] && cp runs/gpu/$k/log.jsonl "$OUT/$k.log.jsonl.part" && mv "$OUT/$k.log.jsonl.part" "$OUT/$k.log.jsonl"
    c=runs/gpu/$k/checkpoint-compact.pt
    if [ -f $STAMP ] && [ -f $c ] && [ $c -nt $STAMP ] && { [ ! -f $STAMP.$k ] || [ $c -nt $STAMP.$k ]; }; then
      touch -r $c $STAMP.$k; send_checkpoint $k
      keep_checkpoint $k
    fi
  done; done ) &
LOGS_PID=$!
trap 'kill $LOGS_PID 2>/dev/null' EXIT  # (an early exit below must not leave the loop running)
# Continue from this session's last call (.carry/), else from the committed weights (they are compact
# training checkpoints: float16 weights, step, data cursor, history); FROM=FILE.pt starts the refiner from another
# compact checkpoint in the working tree (e.g. one made by scripts/reset_colour_residual.py).
for k in refiner depth; do
  from=refine/weights/$k.pt
  if [ "$k" = refiner ] && [ -n "${FROM:-}" ]; then
    [ -f "$FROM" ] || { echo "gpu_train.sh: FROM=$FROM is not a file"; exit 1; }
    [ -f .carry/refiner/checkpoint-compact.pt ] && { echo "gpu_train.sh: FROM and .carry/refiner/ both given"; exit 1; }
    from=$FROM
  fi
  if [ -f .carry/$k/checkpoint-compact.pt ]; then cp .carry/$k/checkpoint-compact.pt runs/gpu/$k/
  elif [ -f "$from" ]; then cp "$from" runs/gpu/$k/checkpoint-compact.pt; fi
done
# DEPTH2_FROM=FILE.pt: the second run continues from its own compact checkpoint (its last call's depth2.ckpt, say),
# not from refine/weights/depth.pt's copy.
if [ -n "${DEPTH2_PRESET:-}" ]; then
  if [ -n "${DEPTH2_FROM:-}" ]; then
    [ -f "$DEPTH2_FROM" ] || { echo "gpu_train.sh: DEPTH2_FROM=$DEPTH2_FROM is not a file"; exit 1; }
    cp "$DEPTH2_FROM" runs/gpu/depth2/checkpoint-compact.pt
  else cp runs/gpu/depth/checkpoint-compact.pt runs/gpu/depth2/; fi
fi
sleep 1; touch $STAMP  # (checkpoints newer than the ones carried in go back as they are written)
PHOTOS=""
[ -d .carry/photos ] && PHOTOS="--photos .carry/photos"

# SOAK_FIRST=N: first, on the idle GPU, where a frame's time goes (scripts/profile_generate.py) and an N-frame
# soak at 512x512 with the default (learned) refiner (scripts/soak.py); the trainings start after it.
if [ -n "${SOAK_FIRST:-}" ]; then
  timeout 120 python3 scripts/profile_generate.py --device cuda --size 512x512 --refiner learned --frames 400 \
    --window 300 360 --top 8 > "$OUT/profile.txt" 2>&1; grep "^#" "$OUT/profile.txt" | tail -n 30
  timeout ${SOAK_S:-200} python3 scripts/soak.py --device cuda --no-video --refiner learned --frames "$SOAK_FIRST" \
    ${SOAK_ARGS:-} --json "$OUT/soak.json" > "$OUT/soak.txt" 2>&1; grep -v -i -E "warn|package metadata" "$OUT/soak.txt" | tail -n 25
  el "profile and soak done"
fi
# EVAL_DEPTH=1: the held-out depth sets (scripts/eval_depth.py: 40 eval worlds each of drone flights, forest-floor walks
# and gorges), rendered here first on the idle GPU, and after
# training the network this call trained, refine/weights/depth.pt and each file of EVAL_DEPTH_ALSO evaluated on them
# (one CPU process per network and set); tables and JSON come back in $OUT/eval_depth.tar.gz. One H200, 2026-12-04:
# 40 x 3 worlds rendered and two networks evaluated in ~340 s; the figures equal the CPU-rendered sets' to the third digit.
# The 2-core CPU renders the three sets in ~12 minutes and scores a network in ~100 s per set (2026-12-04, fifth
# session), so a call's time is better spent training and the returned checkpoint scored there.
EVAL_SETS=("drone:" "walks:--walks --spacing 12" "gorges:--gorges --spacing 12")
# EVAL_DEPTH=beside: the sets render beside the depth network's training instead of before it (the training is
# host-bound and the machine has 16 cores; the rendering gets a longer limit, and the evaluation after training waits
# for it; leave MARGIN=215: the evaluation after training takes ~140 s, and the rendering beside it ~350 s instead of
# 175; 2026-12-04, fifth session: MARGIN=150 ran past the call's 600 s and lost the evaluation).
RENDER_PIDS=()  # (a bare `wait` would also wait for the log-copying loop above, which never ends: 2026-12-04 lost a call so)
if [ -n "${EVAL_DEPTH:-}" ]; then
  for s in "${EVAL_SETS[@]}"; do
    timeout $([ "$EVAL_DEPTH" = beside ] && echo 360 || echo 200) python3 scripts/eval_depth.py --worlds 40 ${s#*:} \
      --render-only --render-device cuda > runs/gpu/render_${s%%:*}.txt 2>&1 & RENDER_PIDS+=($!)
  done
  if [ "$EVAL_DEPTH" != beside ]; then
    wait "${RENDER_PIDS[@]}"; el "eval sets rendered: $(ls runs/depth_eval/*/world_*.npz | wc -l) worlds"
  fi
fi
# The depth network needs no gsplat: start it at once on the last GPU (DEPTH=0: refiner only; DEPTH_PRESET=NAME
# another depth preset, e.g. train-depth-h200-walks).
start_depth() {  # $1 = depth | depth2, $2 = preset, $3 = its options: train in the background on the last GPU
  CUDA_VISIBLE_DEVICES=$((NGPU - 1)) timeout -s KILL $((BUDGET - 15)) python3 -m worldgen.cli train-depth --preset "$2" \
    --out runs/gpu/$1 --deadline "$DEADLINE" $PHOTOS $3 > runs/gpu/$1.log 2>&1 &
}
DEPTH_PID=""
[ "${DEPTH:-1}" != 0 ] && { start_depth depth "${DEPTH_PRESET:-train-depth-h200}" "$DEPTH_ARGS"; DEPTH_PID=$!; }
DEPTH2_PID=""
[ -n "${DEPTH2_PRESET:-}" ] && { start_depth depth2 "$DEPTH2_PRESET" "${DEPTH2_ARGS:-}"; DEPTH2_PID=$!; }

# (~80 s when no build was carried: the depth network trains meanwhile; REFINER=0 skips it, as nothing then needs gsplat
# and the build's 16 compiler processes would slow the depth network's data, GSPLAT=1 builds it anyway)
{ [ "${REFINER:-1}" != 0 ] || [ "${GSPLAT:-0}" = 1 ]; } && gsplat_warm
if [ ! -f .carry/gsplat_cuda.so ] && [ -f $TORCH_EXTENSIONS_DIR/gsplat_cuda/gsplat_cuda.so ]; then
  ls -la $TORCH_EXTENSIONS_DIR/gsplat_cuda/gsplat_cuda.so  # (comes back compressed: carry it as .carry/gsplat_cuda.so.xz)
  python3 -c "import lzma, shutil, sys; shutil.copyfileobj(open(sys.argv[1], 'rb'), lzma.open(sys.argv[2], 'wb'))" \
    $TORCH_EXTENSIONS_DIR/gsplat_cuda/gsplat_cuda.so "$OUT/gsplat_cuda.so.xz"
fi
el "gsplat ready"
# TESTS="tests/test_graphs.py ...": CUDA tests written since the last GPU call, beside the training (same GPU).
TESTS_PID=""
if [ -n "${TESTS:-}" ]; then
  timeout 240 python3 -m pytest -q -p no:cacheprovider $TESTS > runs/gpu/tests.log 2>&1 &
  TESTS_PID=$!
fi
[ -n "${BENCH:-}" ] && python3 scripts/bench_nets.py --device cuda --sizes 256 512 ${BENCH_ARGS:-} 2>&1 | tee runs/gpu/bench_nets.txt
# PROBE=1: the same persistent worlds through the PyTorch renderer and gsplat (the stripes of the training samples),
# on the idle GPU before training; its grids come back in logs.tar.gz (runs/gpu/probe/).
if [ -n "${PROBE:-}" ]; then
  timeout 150 python3 scripts/probe_renderers.py --flights 6 --clips 6 --steps 4 --out runs/gpu/probe 2>&1 \
    | grep -v -i warn | tee runs/gpu/probe.txt | tail -n 30
  el "probe done"
fi

# Still-photo steps (one in three) when the photos travelled with the call (PHOTO_STEPS=0: flight steps only).
[ -d .carry/photos ] && [ "${PHOTO_STEPS:-1}" != 0 ] && REFINER_ARGS="--photos.folder .carry/photos $REFINER_ARGS"
# No full checkpoint mid-call (REFINER_CHECKPOINT_EVERY, default 1,000,000; REFINER_ARGS may still set
# --checkpoint-every): a replay run rebuilds its whole buffer at each full checkpoint multiple so that a run resumed
# there is exact, ~80 s of an H100 call with 0-16 warm steps (2026-12-05, ninth session), but a call continues from the
# compact checkpoint, which is not exact anyway, and the full one never leaves the machine. The run still writes its
# full checkpoint when it stops, and the compact one every compact_every steps. And the rebuild at the call's start
# fills a quarter of the buffer (REFINER_START_FILL, default 0.25; ReplayConfig.start_fill), the refills the rest:
# ~20 s instead of ~80 (not yet measured on the GPU).
REFINER_ARGS="--checkpoint-every ${REFINER_CHECKPOINT_EVERY:-1000000} --replay.start-fill ${REFINER_START_FILL:-0.25}
  $REFINER_ARGS"
# REFINER=0: the depth network alone (the GPU to itself: ~5x its steps/s beside three refiner processes).
if [ "${REFINER:-1}" != 0 ]; then
  el "refiner training: $((NGPU * PER_GPU)) processes on $NGPU GPU(s)"
  timeout -s KILL $((BUDGET - 15 - $(date +%s) + T0)) torchrun --standalone --nproc_per_node $((NGPU * PER_GPU)) \
    -m worldgen.cli train --preset ${PRESET:-train-refiner-h200} --out runs/gpu/refiner --deadline "$DEADLINE" $REFINER_ARGS \
    > runs/gpu/refiner.log 2>&1
  grep -v '^{' runs/gpu/refiner.log | grep -v -i warn | tail -n 12
  grep '^{' runs/gpu/refiner.log | tail -n 3
  el "refiner done; waiting for depth"
fi
if [ -n "${GEN_BENCH:-}" ] && [ -f runs/gpu/refiner/refiner.pt ]; then
  for r in runs/gpu/refiner/refiner.pt classical; do
    timeout 60 python3 scripts/bench_generate.py --device cuda --size 512x512 --frames 60 --modes persistent per-frame \
      --refiner $r 2>&1 | grep -v -i warn | tee -a runs/gpu/bench_generate.txt
  done
fi
if [ -n "${EVAL:-}" ] && [ -f runs/gpu/refiner/refiner.pt ]; then  # learned against classical, held-out seeds
  # (the classical refiner's flights are the committed docs/eval/ baseline: only the trained refiner flies, ~90 s)
  timeout 150 python3 scripts/eval_refiner.py --device cuda --refiners runs/gpu/refiner/refiner.pt \
    --seeds 1000000 1000001 1000002 --paths forward autopilot --frames 65 --size 256x256 \
    --baseline docs/eval/classical_256x256_65.json \
    --out runs/gpu/eval_refiner.json 2>&1 | grep -v -i warn | tail -n 24 | tee runs/gpu/eval_refiner.txt
fi
if [ -n "${REAL_EVAL:-}" ] && [ -f runs/gpu/refiner/refiner.pt ] && [ -d .carry/real ]; then  # real photos, 300 frames
  timeout ${REAL_EVAL_S:-240} python3 scripts/real_flights.py .carry/real/* --refiners classical runs/gpu/refiner/refiner.pt \
    --frames 301 --size 256x256 --marks 0 50 100 200 300 --device cuda --out runs/gpu/real_flights.json \
    --sheet runs/gpu/real_flights.png 2>&1 | grep -v -i warn | tee runs/gpu/real_flights.txt | tail -n 30
fi
if [ -n "$TESTS_PID" ]; then
  wait $TESTS_PID; rc=$?  # pytest's status is the verdict; on the GPU nothing of $TESTS may skip
  el "tests: pytest exit $rc, $(grep -c '^SKIPPED' runs/gpu/tests.log) skipped$( [ $rc -ne 0 ] && echo '  <-- FAILED')"
  grep -v -i warn runs/gpu/tests.log | tail -n 15
fi
if [ -n "$DEPTH_PID" ]; then wait $DEPTH_PID; grep -v -i warn runs/gpu/depth.log | tail -n 3; fi
if [ -n "$DEPTH2_PID" ]; then wait $DEPTH2_PID; grep -v -i warn runs/gpu/depth2.log | tail -n 3; fi
if [ -n "${EVAL_DEPTH:-}" ]; then
  [ "$EVAL_DEPTH" = beside ] && { wait "${RENDER_PIDS[@]}"; el "eval sets rendered: $(ls runs/depth_eval/*/world_*.npz | wc -l) worlds"; }
  PIDS=(); TRAINED_DEPTH=""; mkdir -p runs/gpu/eval_depth
  [ "${DEPTH:-1}" != 0 ] && TRAINED_DEPTH=runs/gpu/depth/checkpoint-compact.pt  # (DEPTH=0: it is depth.pt's copy)
  for w in $TRAINED_DEPTH refine/weights/depth.pt ${EVAL_DEPTH_ALSO:-}; do
    [ -f "$w" ] || continue
    n=$(basename "$(dirname "$w")")_$(basename "$w" .pt)
    for s in "${EVAL_SETS[@]}"; do
      timeout 200 python3 scripts/eval_depth.py --worlds 40 ${s#*:} --no-render --threads 2 --weights "$w" \
        --json "runs/gpu/eval_depth/${n}_${s%%:*}.json" > "runs/gpu/eval_depth/${n}_${s%%:*}.txt" 2>&1 & PIDS+=($!)
    done
  done
  wait "${PIDS[@]}"; el "depth evaluated"; grep -H -E "^[|] (learned|prior) [|]" runs/gpu/eval_depth/*.txt | sed "s|runs/gpu/eval_depth/||"
  # (one file: a call brings back 8 files at most, and six networks x sets would push out the checkpoint and logs)
  tar czf "$OUT/eval_depth.tar.gz" runs/gpu/eval_depth runs/gpu/render_*.txt
fi
el "packing"
kill $LOGS_PID 2>/dev/null; wait $LOGS_PID 2>/dev/null
TRAINED=""
[ "${REFINER:-1}" != 0 ] && TRAINED="refiner"
[ "${DEPTH:-1}" != 0 ] && TRAINED="$TRAINED depth"  # (DEPTH=0: the depth checkpoint is the one carried in, unchanged)
[ -n "$DEPTH2_PID" ] && TRAINED="$TRAINED depth2"
for k in $TRAINED; do
  [ -f runs/gpu/$k/checkpoint-compact.pt ] && send_checkpoint $k
done
tar czf "$OUT/logs.tar.gz" runs/gpu/*.log runs/gpu/*.txt runs/gpu/*.json runs/gpu/real_flights.png runs/gpu/*/log.jsonl runs/gpu/*/*.png runs/gpu/probe/*.jpg runs/gpu/*/train.json \
  $(ls runs/gpu/refiner/samples/*.png 2>/dev/null | tail -n 4) $(ls runs/gpu/depth/samples/*.png 2>/dev/null | tail -n 4) $(ls runs/gpu/depth2/samples/*.png 2>/dev/null | tail -n 4) 2>/dev/null
ls -la "$OUT"
el "done"
