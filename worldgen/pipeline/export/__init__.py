"""`worldgen export`: a run folder as files other tools open.

- `mesh`: the run's refined RGBD frames fused into a coloured triangle mesh (open3d TSDF), written
  with trimesh as GLB / PLY / OBJ.
- `nerfstudio`: training data for other tools: nerfstudio's `transforms.json` (OpenGL cameras) and
  a COLMAP text model (OpenCV cameras), with images, depth maps and a seed point cloud.
- `splat`: the Gaussian world for the web: antimatter15's `.splat` and SuperSplat's compressed PLY.
- `rundir` / `depth`: reading a run folder, and per-frame depth (saved files or re-rendered).

Conventions are worldgen's (worldgen/core/camera.py); each exporter converts to its target's convention
once, at its edge, and says so.
"""
