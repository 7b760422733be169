#!/usr/bin/env bash
# Prepare, on this machine, what a GPU call of scripts/gpu_train.sh carries (run from the repository root):
#   .whl/    the wheels the GPU image lacks (gsplat, plyfile, lpips via ../shared/tools/device-wheels.sh, and
#            tyro with its two missing needs: without them every `worldgen` command there stops at `import tyro`)
#   .carry/photos/   the still-photo training set downscaled to <= 512 px (full size does not fit the call)
#   .carry/real/     the 14 photos for trying flights (../shared/data/real), as 256x256 JPEG, for REAL_EVAL=1 in
#                    scripts/gpu_train.sh (300-frame flights on the GPU instead of 40 CPU minutes); never trained on
# then print what the call will send against its 64 MiB limit. gsplat's kernels (.carry/gsplat_cuda.so, ~15 MB)
# come back from the first call. To continue a run from the last call's compact checkpoint, copy it over
# refine/weights/refiner.pt in the working tree (gpu_train.sh starts from it when .carry/refiner/ is absent):
# the tracked file travels anyway, while .carry/refiner/ would add ~12 MB and break the limit.
#
#   bash scripts/gpu_prepare.sh [PHOTOS_DIR]        (default ../shared/data/photos)
set -euo pipefail
PHOTOS=${1:-../shared/data/photos}
REAL=${REAL:-../shared/data/real}
for p in /.whl/ /.carry/; do grep -qx "$p" .git/info/exclude 2>/dev/null || echo "$p" >> .git/info/exclude; done
../shared/tools/device-wheels.sh tyro==1.0.17 docstring-parser==0.18.0 typeguard==4.6.1 > /dev/null
mkdir -p .carry/photos
.venv/bin/python - "$PHOTOS" <<'PY'
import sys
from pathlib import Path
from PIL import Image
src, dst = Path(sys.argv[1]), Path(".carry/photos")
n = 0
for p in sorted(src.iterdir()):
    if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp") and not (dst / (p.stem + ".jpg")).exists():
        im = Image.open(p).convert("RGB")
        im.thumbnail((512, 512), Image.LANCZOS)
        im.save(dst / (p.stem + ".jpg"), quality=90)
        n += 1
print(f"{n} photos downscaled into .carry/photos")
PY
if [ -d "$REAL" ]; then
  mkdir -p .carry/real
  .venv/bin/python - "$REAL" <<'PY'
import sys
from pathlib import Path
from PIL import Image
src, dst = Path(sys.argv[1]), Path(".carry/real")
for p in sorted(src.iterdir()):
    if p.suffix.lower() in (".jpg", ".jpeg", ".png"):  # square cube faces (90 degrees): 256x256 is the flights' size
        Image.open(p).convert("RGB").resize((256, 256), Image.LANCZOS).save(dst / (p.stem + ".jpg"), quality=92)
print(f"{len(list(dst.iterdir()))} photos in .carry/real")
PY
fi
( git ls-files -z | xargs -0 stat -c %s; find .carry .whl -type f -exec stat -c %s {} \; ) |
  awk '{s += $1} END {printf "a call carrying .whl and .carry sends %.1f MiB (limit 64)\n", s / 1048576}'
