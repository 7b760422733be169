#!/usr/bin/env bash
# Everything measured on the GPU machine in one call (see BENCHMARKS.md). Run from the repo root with
# the wheels of ../shared/tools/device-wheels.sh in .whl/. Logs go to $OUT (or ./gpu-out).
set -u
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"
step() { echo "== $*" | tee -a "$OUT/log.txt"; /usr/bin/time -f "   (%e s)" "$@" 2>&1 | tee -a "$OUT/log.txt"; }
for s in ${STEPS:-tests renderer generate synth autopilot bench}; do  # also: synth-compile, loop
  case $s in
    tests) python3 -m pytest -q -x -p no:cacheprovider tests/test_renderers.py > "$OUT/tests.txt" 2>&1; rc=$?
           tail -n 3 "$OUT/tests.txt" | tee -a "$OUT/log.txt"  # (pytest's status is the verdict; nothing may skip here)
           echo "== tests: pytest exit $rc, $(grep -c '^SKIPPED' "$OUT/tests.txt") skipped" | tee -a "$OUT/log.txt" ;;
    renderer) step python3 scripts/bench_renderer.py --device cuda --max-n 16000000 --sizes 256 512 --backends gsplat ;;
    generate) step python3 scripts/bench_generate.py --device cuda --size 512x512 --frames 60
              step python3 scripts/bench_generate.py --device cuda --size 256x256 --frames 60 --warmup 0 ;;
    synth) step python3 scripts/bench_synth.py --device cuda
           step python3 scripts/bench_synth.py --device cuda --fast --batch 128 ;;
    synth-compile) # issue 9's >= 500 data frames/s: the renderer's torch.compile'd loops against eager, training quality
           step python3 scripts/bench_synth.py --device cuda --quality training --batch 128 256
           step python3 scripts/bench_synth.py --device cuda --quality training --batch 128 256 --compile ;;
    autopilot) step python3 scripts/autopilot_check.py --frames 500 --size 256x256 --device cuda ;;
    loop) for p in shared-photos/*.png shared-photos/*.jpg; do [ -f "$p" ] && step python3 scripts/loop_closure.py "$p" --frames 60 --device cuda; done ;;
    bench) step python3 -m worldgen.cli bench --device cuda --out "$OUT/bench_gpu.json" ;;
  esac
done
