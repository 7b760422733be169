"""Procedural nature-flight renderer: seeded landscapes, drone flights, exact depth and poses.

Modules:
    terrain  -- `make_world(seed)`: fractal height fields, climates, materials, water, sky, haze.
    render   -- `render_views(world, c2w, K, W, H)`: batched torch ray marching -> rgb, z-depth, sky mask.
    flights  -- `make_flight(world, T, W, H, seed)`: drone-like camera paths that never touch the ground;
                `make_walk`: walks on the forest floor of a standing-tree world;
                `make_gorge_flight`: low along a gorge's floor; `kind_world` / `kind_flight` pick one of them.
    trees    -- `standing_world(world)`: trees as 3D trunks and crowns (traced exactly), for views from the ground;
                `winter_world`: the same on a snowy floor.
    gorge    -- `gorge_world(world)`: one winding canyon, dark rock walls over a bright floor.
    acid     -- the ACID / RealEstate10K camera-file layout, writer and the one training loader.
    splits   -- fixed seed ranges: evaluation seeds are never used for training.

Conventions are worldgen's (worldgen/core/camera.py): OpenCV camera axes, world up = -y, camera-to-world
poses, pixel intrinsics with pixel centres at +0.5, float32 z-depth with sky = +inf.
"""

from refine.synth.flights import (FLIGHT_KINDS, FLIGHT_MAKERS, TWIN_OF, Flight, kind_flight, kind_world,
                                  make_flight, make_gorge_flight, make_walk)
from refine.synth.gorge import gorge_world
from refine.synth.render import RenderSettings, SynthRender, render_frame, render_views
from refine.synth.terrain import CLIMATES, World, make_world
from refine.synth.trees import standing_world, winter_world

__all__ = [
    "CLIMATES",
    "FLIGHT_KINDS",
    "FLIGHT_MAKERS",
    "Flight",
    "RenderSettings",
    "SynthRender",
    "TWIN_OF",
    "World",
    "gorge_world",
    "kind_flight",
    "kind_world",
    "make_flight",
    "make_gorge_flight",
    "make_walk",
    "make_world",
    "render_frame",
    "render_views",
    "standing_world",
    "winter_world",
]
