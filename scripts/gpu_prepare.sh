#!/usr/bin/env bash
# Prepare, on this machine, what a GPU call of scripts/gpu_train.sh carries (run from the repository root):
#   .whl/    the wheels the GPU image lacks (gsplat, plyfile, lpips via ../shared/tools/device-wheels.sh, and
#            tyro with its two missing needs: without them every `worldgen` command there stops at `import tyro`)
#   .carry/photos/   the still-photo training set downscaled to <= 512 px (full size does not fit the call)
#   .carry/real/     the 14 photos for trying flights (../shared/data/real), as 256x256 JPEG, for REAL_EVAL=1 in
#                    scripts/gpu_train.sh (300-frame flights on the GPU instead of 40 CPU minutes); never trained on
# then print what the call will send against its 64 MiB limit. gsplat's kernels come back from the first call
# compressed; carry them as .carry/gsplat_cuda.so.xz (2.0 MB; an uncompressed .carry/gsplat_cuda.so from before
# is compressed here). To continue a run from the last call's compact checkpoint, copy it over the tracked file the
# run starts from (refine/weights/refiner.pt, or refine/weights/refiner-fidelity.pt with FROM=that file): the
# tracked files travel anyway (49 MiB since the docs figures became JPEG, 2026-12-03), while .carry/refiner/ (9.5 MiB more)
# would break the limit beside the wheels and the kernels (57.6 MiB with them).
#
#   bash scripts/gpu_prepare.sh [PHOTOS_DIR]        (default ../shared/data/photos)
set -euo pipefail
PHOTOS=${1:-../shared/data/photos}
REAL=${REAL:-../shared/data/real}
for p in /.whl/ /.carry/; do grep -qx "$p" .git/info/exclude 2>/dev/null || echo "$p" >> .git/info/exclude; done
../shared/tools/device-wheels.sh tyro==1.0.17 docstring-parser==0.18.0 typeguard==4.6.1 > /dev/null
mkdir -p .carry/photos .carry/real
.venv/bin/python - "$PHOTOS" "$REAL" <<'PY'
import sys
from pathlib import Path
from PIL import Image

def shrink(src: Path, dst: Path, fit: int, exact: bool) -> None:
    """Every photo of src as a JPEG in dst: within fit x fit px, or exactly fit x fit (the square cube faces
    of the real photos, 90 degrees, at the flights' 256x256)."""
    if not src.is_dir():
        return
    for p in sorted(src.iterdir()):
        out = dst / (p.stem + ".jpg")
        if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp") and not out.exists():
            im = Image.open(p).convert("RGB")
            im = im.resize((fit, fit), Image.LANCZOS) if exact else (im.thumbnail((fit, fit), Image.LANCZOS) or im)
            im.save(out, quality=92 if exact else 82)  # (82: the carry is 64 MiB, the tracked tree ~53)
    print(f"{len(list(dst.iterdir()))} photos in {dst}")

shrink(Path(sys.argv[1]), Path(".carry/photos"), 512, exact=False)
shrink(Path(sys.argv[2]), Path(".carry/real"), 256, exact=True)
PY
if [ -f .carry/gsplat_cuda.so ] && [ ! -f .carry/gsplat_cuda.so.xz ]; then
  .venv/bin/python -c "import lzma, shutil; shutil.copyfileobj(open('.carry/gsplat_cuda.so', 'rb'), lzma.open('.carry/gsplat_cuda.so.xz', 'wb'))"
fi
rm -f .carry/gsplat_cuda.so  # (only the compressed copy may travel: both would break the limit)
# The limit counts the disk blocks the files take (4 KiB each; what du says), not their bytes: 63.8 MiB of
# bytes in 64.6 MiB of blocks was refused (2026-12-01).
blocks() { awk '{s += int(($1 + 4095) / 4096) * 4096} END {printf "%.1f", s / 1048576}'; }
TRACKED=$(git ls-files -z | xargs -0 stat -c %s | blocks)
for part in .whl .carry/*; do
  [ -e "$part" ] && echo "  $part: $(find "$part" -type f -exec stat -c %s {} \; | blocks) MiB"
done
echo "tracked files: $TRACKED MiB; a call sends these plus what it carries (limit 64 MiB, in disk blocks)"
