# Sourced by the GPU scripts (scripts/gpu_train.sh, gpu_train_ab.sh, gpu_soak.sh): the call's clock
# (T0, `el` to print elapsed seconds, DEADLINE = T0 + BUDGET - MARGIN for training runs' --deadline),
# $OUT, then install the carried wheels, set the environment (NVLink multicast off, see the device
# notes), and load gsplat's kernels from .carry/gsplat_cuda.so[.xz] when an earlier call built them (else
# gsplat compiles them, about 80 s). Set BUDGET (seconds of the call) before sourcing.
T0=${T0:-$(date +%s)}
el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
DEADLINE=$((T0 + ${BUDGET:?set BUDGET before sourcing gpu_env.sh} - ${MARGIN:-40}))
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 PYTHONUNBUFFERED=1
export TORCH_EXTENSIONS_DIR=/tmp/torch_ext NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
# gsplat's kernels: load the carried build, or compile them (about 80 s) and send the build back. The build
# travels xz-compressed (.carry/gsplat_cuda.so.xz, 2.0 MB instead of 15.8: room in the call's 64 MiB for a
# second refiner's weights and the photos) and is unpacked here first.
if [ -f .carry/gsplat_cuda.so.xz ] && [ ! -f .carry/gsplat_cuda.so ]; then
  python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('.carry/gsplat_cuda.so.xz'), open('.carry/gsplat_cuda.so', 'wb'))" || exit 1
fi
if [ -f .carry/gsplat_cuda.so ]; then
  cat > /tmp/site/gsplat/csrc.py <<EOF
"""gsplat's CUDA kernels, built by an earlier call and carried here (gsplat imports gsplat.csrc first)."""
import importlib.util as _u
_spec = _u.spec_from_file_location("gsplat_cuda", "$PWD/.carry/gsplat_cuda.so")
_m = _u.module_from_spec(_spec)
_spec.loader.exec_module(_m)
globals().update({k: v for k, v in vars(_m).items() if not k.startswith("__")})
EOF
fi
# gsplat_warm: load (or build) gsplat's kernels with one tiny rasterization. Run here unless GSPLAT_LATER=1, where the
# caller runs it when it first needs gsplat (scripts/gpu_train.sh: after the depth network, which needs none, has started).
gsplat_warm() {
python3 - <<'EOF'
import time, torch
t = time.time()
from gsplat import rasterization
m = torch.randn(100, 3, device="cuda") + torch.tensor([0, 0, 5.0], device="cuda")
q = torch.randn(100, 4, device="cuda"); s = torch.rand(100, 3, device="cuda") * 0.1
rasterization(m, q, s, torch.rand(100, device="cuda"), torch.rand(100, 3, device="cuda"), torch.eye(4, device="cuda")[None],
              torch.tensor([[100.0, 0, 32], [0, 100, 32], [0, 0, 1]], device="cuda")[None], 64, 64)
torch.cuda.synchronize()
print(f"gsplat ready in {time.time() - t:.1f} s")
EOF
}
[ "${GSPLAT_LATER:-0}" = 1 ] || gsplat_warm
