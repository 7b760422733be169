"""`worldgen export RUN_DIR --mesh world.glb --nerfstudio DIR --splat world.splat`: a run as files other tools open.

Light at import time (the `worldgen` CLI imports this module to build its parser): open3d, trimesh
and the renderers are imported inside `main`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import tyro
from typing_extensions import Annotated

from worldgen.commands import Command
from worldgen.pipeline.export.mesh import MeshConfig
from worldgen.core.io import UserInputError, check_writable_dir


@dataclass(frozen=True)
class ExportConfig:
    """Export a run folder: a coloured mesh, nerfstudio / gsplat training data, compressed splats."""

    run: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="RUN_DIR")]
    """A run folder written by `worldgen fly` (cameras.json, frames/, world.ply)."""
    mesh: str | None = None
    """Write the frames fused into a vertex-coloured mesh: FILE.glb, FILE.ply or FILE.obj (+y up)."""
    nerfstudio: str | None = None
    """Write training data here: transforms.json (nerfstudio), sparse/0 (COLMAP, gsplat), images, depths, points."""
    splat: str | None = None
    """Write the Gaussians for web viewers: FILE.splat (antimatter15) or FILE.compressed.ply (SuperSplat)."""
    depth_source: Literal["auto", "files", "render"] = "auto"
    """Per-frame depth: auto = the run's depth/NNNNN.npy where present, else world.ply re-rendered there."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where depth is re-rendered: auto picks cuda (gsplat) when available, else cpu (pure PyTorch)."""
    tsdf: MeshConfig = field(default_factory=MeshConfig)
    """Mesh fusion settings (see worldgen/pipeline/export/mesh.py)."""


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def _check_outputs(cfg: ExportConfig) -> None:
    """Fail on bad output paths before any work (one line each, exit 2): a file name of the run's own (its
    world.ply, cameras.json, ...: the export would destroy the run), --mesh and --splat at one path, a --nerfstudio
    folder that is the run's, in use or holds files the export does not write (`export_nerfstudio` holds it)."""
    from worldgen.core.runfolder import RUN_ENTRIES, check_output_folder
    from worldgen.pipeline.export.mesh import check_mesh_path
    from worldgen.pipeline.export.splat import check_splat_path

    if not (cfg.mesh or cfg.nerfstudio or cfg.splat):
        raise UserInputError("nothing to export: pass --mesh FILE.glb, --nerfstudio DIR and/or --splat FILE.splat")
    if cfg.mesh:
        check_mesh_path(cfg.mesh)
        cfg.tsdf.check()
    if cfg.splat:
        check_splat_path(cfg.splat)
    for f in (cfg.mesh, cfg.splat):
        if f is not None:
            if Path(f).is_dir():
                raise UserInputError(f"{f} is a directory; give a file name")
            check_writable_dir(Path(f).parent if str(Path(f).parent) else Path("."))
    run = Path(cfg.run).resolve()
    for option, f in (("--mesh", cfg.mesh), ("--splat", cfg.splat)):
        if f is not None and Path(f).resolve().parent == run and Path(f).name in RUN_ENTRIES:
            raise UserInputError(f"{option} {f} is the run's own {Path(f).name}; give another file name")
    if cfg.mesh and cfg.splat and Path(cfg.mesh).resolve() == Path(cfg.splat).resolve():
        raise UserInputError(f"--mesh and --splat are the same file {cfg.mesh}; give each its own")
    if cfg.nerfstudio:
        from worldgen.pipeline.export.nerfstudio import NERFSTUDIO_ENTRIES

        p = Path(cfg.nerfstudio)
        if p.exists() and not p.is_dir():
            raise UserInputError(f"--nerfstudio {p} exists and is not a directory")
        if p.resolve() == run:
            raise UserInputError(f"--nerfstudio {p} is the run folder itself; give a folder of its own")
        check_output_folder(p, NERFSTUDIO_ENTRIES.__contains__, "export --nerfstudio", "--nerfstudio")


def main(cfg: ExportConfig) -> None:
    from worldgen.pipeline.export.depth import FrameDepths
    from worldgen.pipeline.export.rundir import RunDir

    run = RunDir.open(cfg.run)
    _check_outputs(cfg)
    say = lambda s: print(f"worldgen export: {s}", flush=True)  # noqa: E731
    # --splat and --nerfstudio (its seed points) read world.ply: one without a usable Gaussian (empty, all NaN) is
    # refused here, before any output is written, not after the mesh or the frames are
    scene = run.load_scene() if cfg.splat or (cfg.nerfstudio and run.ply.is_file()) else None
    depth_of = None
    if cfg.mesh or cfg.nerfstudio:
        run.require_frames()
        if cfg.depth_source != "files":
            run.require_ply()
        if cfg.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise UserInputError("--device cuda was asked for, but CUDA is not available on this machine")
        depths = FrameDepths(run, cfg.depth_source, cfg.device)
        cache: dict = {}

        def depth_of(t: int):
            if t not in cache:
                cache[t] = depths(t)
            return cache[t]

    if cfg.mesh:
        from worldgen.pipeline.export.mesh import export_mesh

        t0 = time.perf_counter()
        st = export_mesh(run, depth_of, cfg.mesh, cfg.tsdf, log=say)
        rendered = f", {depths.rendered} depth maps rendered" if depths.rendered else ""
        say(f"wrote {st['path']}: {st['triangles']:,} triangles, {st['vertices']:,} vertices, {_mb(st['bytes'])} "
            f"in {time.perf_counter() - t0:.1f} s{rendered}")
    if cfg.nerfstudio:
        from worldgen.pipeline.export.nerfstudio import export_nerfstudio

        t0 = time.perf_counter()
        st = export_nerfstudio(run, depth_of, cfg.nerfstudio, log=say, scene=scene)
        say(f"wrote {st['dir']}: transforms.json + sparse/0 (COLMAP), {st['frames']} images and depth maps, "
            f"{st['seed_points']:,} seed points in {time.perf_counter() - t0:.1f} s "
            f"(depth-supervised nerfstudio methods: --depth-unit-scale-factor 1)")
    if cfg.splat:
        from worldgen.pipeline.export.splat import export_splat

        t0 = time.perf_counter()
        st = export_splat(scene, cfg.splat)
        plain = run.ply.stat().st_size
        say(f"wrote {st['path']} ({st['format']}): {st['gaussians']:,} Gaussians, {_mb(st['bytes'])} = "
            f"{100 * st['bytes'] / plain:.0f} % of world.ply ({_mb(plain)}) in {time.perf_counter() - t0:.1f} s")


COMMAND = Command(ExportConfig, main)
