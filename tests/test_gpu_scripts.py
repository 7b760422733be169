"""The GPU call scripts (scripts/*.sh) parse, and gpu_train.sh's checkpoint sender returns whole checkpoints.

The calls themselves need the GPU machine; what they do to files can be checked here: a call killed before it packs
keeps the last checkpoint the background loop sent, so that sender must never leave a part half-written under the
name the next session reassembles (`cat NAME.ckpt.part*`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "scripts").glob("*.sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_the_gpu_scripts_parse(script):
    r = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def _sender() -> str:
    """gpu_train.sh's send_checkpoint function and the put_parts it calls, as written there."""
    text = (ROOT / "scripts" / "gpu_train.sh").read_text()
    found = [re.search(rf"^{name}\(\) \{{.*?^\}}", text, flags=re.S | re.M) for name in ("put_parts", "send_checkpoint")]
    assert all(found), "send_checkpoint or put_parts not found in scripts/gpu_train.sh"
    return "\n".join(m.group(0) for m in found)


@pytest.mark.skipif(shutil.which("split") is None, reason="needs coreutils split")
@pytest.mark.parametrize("size", [3_000, 20_000_000], ids=["one part", "two parts"])
def test_the_checkpoint_sender_returns_whole_files(tmp_path, size):
    ckpt = tmp_path / "runs" / "gpu" / "refiner" / "checkpoint-compact.pt"
    ckpt.parent.mkdir(parents=True)
    data = os.urandom(size)
    ckpt.write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    stale = out / "refiner.ckpt.part00"
    stale.write_bytes(b"an older checkpoint")  # what an earlier send left: replaced whole
    script = f"set -eu\nOUT={out}\n{_sender()}\nsend_checkpoint refiner\n"
    r = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    parts = sorted(out.glob("refiner.ckpt.part*"))
    assert [p.name for p in parts] == [f"refiner.ckpt.part{i:02d}" for i in range(len(parts))]
    assert len(parts) == (1 if size < 15 * 2**20 else 2)
    assert all(p.stat().st_size <= 15 * 2**20 for p in parts)
    assert b"".join(p.read_bytes() for p in parts) == data
    assert not list(out.glob("tmp-*"))  # nothing half-copied left behind
