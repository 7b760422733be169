"""Camera paths: loop closure, speeds, keyframe interpolation and JSON errors, and the autopilot
flying 500 frames over a ray-cast synthetic terrain without touching it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from worldgen.core.camera import Camera, look_at, quat_to_rotmat, rotmat_to_quat
from worldgen.core.frame import Frame
from worldgen.core.io import UserInputError
from worldgen.pipeline.paths import (
    AutopilotConfig,
    AutopilotPath,
    ForwardPath,
    KeyframePath,
    LoopPath,
    RetracePath,
    make_path,
)

UP = torch.tensor([0.0, -1.0, 0.0])


@pytest.fixture(autouse=True)
def _one_thread():
    """These tests run many tiny tensor ops; on a busy 2-core machine, two intra-op threads waiting
    on each other make them ~10x slower than one thread, so use one (and restore the setting)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _start(pose: torch.Tensor | None = None, size: tuple[int, int] = (48, 32)) -> Camera:
    return Camera.from_fov(60.0, size[0], size[1], pose)


def _tilted_start() -> Camera:
    """A roll-free start camera somewhere in the world, turned and slightly pitched."""
    p = torch.tensor([1.0, -0.5, 2.0])
    return _start(look_at(p, p + torch.tensor([0.6, 0.1, 1.0])))


def _assert_rigid_roll_free(poses: torch.Tensor, tol: float = 1e-5) -> None:
    """poses [T, 4, 4]: finite, orthonormal right-handed rotations, camera x axis horizontal."""
    assert torch.isfinite(poses).all()
    R = poses[:, :3, :3].double()
    eye = torch.eye(3, dtype=torch.float64).expand_as(R)
    assert torch.allclose(R.transpose(1, 2) @ R, eye, atol=tol)
    assert torch.allclose(torch.linalg.det(R), torch.ones(len(R), dtype=torch.float64), atol=tol)
    roll_sin = R[:, :, 0] @ UP.double()  # sin(roll): x axis' component along world up
    assert roll_sin.abs().max() < tol
    assert torch.equal(poses[:, 3], torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(len(poses), 4))


def _rot_angle(Ra: torch.Tensor, Rb: torch.Tensor) -> torch.Tensor:
    """Angle (radians) of the relative rotation between [..., 3, 3] rotations."""
    tr = (Ra.transpose(-1, -2) @ Rb).diagonal(dim1=-2, dim2=-1).sum(-1)
    return torch.acos(((tr - 1) / 2).clamp(-1, 1))


# =============================================================================== forward
def test_forward_constant_speed_along_start_axis():
    start = _tilted_start()
    path = ForwardPath(start, scale=3.0, num_frames=40, speed=0.05)
    poses = path.poses()
    assert torch.equal(poses[0], start.c2w)
    steps = poses[1:, :3, 3] - poses[:-1, :3, 3]
    assert torch.allclose(steps.norm(dim=-1), torch.full((39,), 0.05 * 3.0), rtol=1e-5)
    assert torch.allclose(steps / steps.norm(dim=-1, keepdim=True), start.c2w[:3, 2].expand(39, 3), atol=1e-5)
    assert torch.allclose(poses[:, :3, :3], start.c2w[:3, :3].expand(40, 3, 3))
    _assert_rigid_roll_free(poses)
    with pytest.raises(IndexError):
        path.pose(40)


# =============================================================================== loop
@pytest.mark.parametrize("num_frames", [2, 3, 50, 101])
@pytest.mark.parametrize("retrace", [False, True])
def test_loop_closes_exactly(num_frames, retrace):
    start = _tilted_start()
    path = LoopPath(start, scale=2.5, num_frames=num_frames, speed=0.03, retrace=retrace)
    poses = path.poses()
    assert torch.equal(poses[0], start.c2w)
    assert torch.equal(poses[-1], start.c2w)  # bit for bit
    _assert_rigid_roll_free(poses)


def test_loop_ellipse_is_smooth_constant_speed_and_looks_into_the_scene():
    start = _tilted_start()
    T, scale, speed = 120, 2.0, 0.02
    poses = LoopPath(start, scale=scale, num_frames=T, speed=speed).poses()
    p, R = poses[:, :3, 3], poses[:, :3, :3]
    steps = (p[1:] - p[:-1]).norm(dim=-1)
    # Constant speed, including the last step into the (exact) start pose: no jump at closure.
    # (chords of a curved arc: 1% shorter at most where the ellipse turns tightest)
    assert torch.allclose(steps, torch.full_like(steps, speed * scale), rtol=1e-2)
    # Smooth: consecutive steps turn by a small angle (the loop turns 2*pi over T steps overall).
    v = p[1:] - p[:-1]
    cos_turn = (v[1:] * v[:-1]).sum(-1) / (v[1:].norm(dim=-1) * v[:-1].norm(dim=-1))
    assert cos_turn.min() > math.cos(math.radians(20))
    # It goes out: the farthest frame is well ahead of the start along the view axis.
    fwd = start.c2w[:3, 2]
    ahead = (p - start.position) @ fwd
    assert ahead.max() > 0.3 * speed * scale * (T - 1)
    assert ahead.min() > -1e-4  # never behind the photo's camera
    # Looks into the scene the whole way, also when flying back: within 30 degrees of the start view.
    assert (R[:, :, 2] @ fwd).min() > math.cos(math.radians(30))
    assert _rot_angle(R[1:], R[:-1]).max() < math.radians(2)


def test_loop_retrace_revisits_the_same_poses():
    start = _tilted_start()
    T = 41
    poses = LoopPath(start, scale=1.0, num_frames=T, speed=0.05, retrace=True).poses()
    for t in range(T):
        assert torch.equal(poses[t], poses[T - 1 - t])
    assert torch.allclose(poses[:, :3, :3], start.c2w[:3, :3].expand(T, 3, 3))  # always looking forward
    ahead = (poses[:, :3, 3] - start.position) @ start.c2w[:3, 2]
    assert torch.isclose(ahead[20], torch.tensor(20 * 0.05), atol=1e-5)


# =============================================================================== keyframes
def _write(tmp_path, data, name="keyframes.json"):
    f = tmp_path / name
    f.write_text(data if isinstance(data, str) else json.dumps(data))
    return f


KEYFRAMES = {
    "units": "scene",
    "keyframes": [
        {"position": [0, 0, 0], "look_at": [0, 0, 1]},
        {"position": [0.2, -0.1, 1.0], "look_at": [0.6, -0.1, 2.0]},
        {"position": [0.8, -0.2, 1.6], "quat": [0.9238795, 0.0, 0.3826834, 0.0]},
        {"position": [1.0, -0.3, 2.8], "look_at": [0.5, -0.2, 4.0]},
    ],
}


def test_keyframes_pass_through_keyframes_at_their_frames(tmp_path):
    start = _tilted_start()
    scale = 2.0
    path = KeyframePath.from_json(_write(tmp_path, KEYFRAMES), start, scale, num_frames=90)
    assert path.keyframe_frames[0] == 0 and path.keyframe_frames[-1] == 89
    assert path.keyframe_frames == sorted(set(path.keyframe_frames))
    R0, p0 = start.c2w[:3, :3], start.c2w[:3, 3]
    for kf, t in zip(KEYFRAMES["keyframes"], path.keyframe_frames):
        c2w = path.pose(t)
        want_p = p0 + R0 @ (scale * torch.tensor(kf["position"], dtype=torch.float32))
        assert torch.allclose(c2w[:3, 3], want_p, atol=1e-5)
        if "look_at" in kf:
            target = p0 + R0 @ (scale * torch.tensor(kf["look_at"], dtype=torch.float32))
            want_R = look_at(want_p, target)[:3, :3]
        else:
            want_R = R0 @ quat_to_rotmat(torch.tensor(kf["quat"]))
        assert torch.allclose(c2w[:3, :3], want_R, atol=1e-5)
    assert torch.equal(path.pose(0), start.c2w)


def test_keyframes_are_smooth_with_even_speed(tmp_path):
    start = _start()
    T = 90
    path = KeyframePath.from_json(_write(tmp_path, KEYFRAMES), start, 1.0, num_frames=T)
    poses = path.poses()
    assert torch.isfinite(poses).all()
    p = poses[:, :3, 3].double()
    v = p[1:] - p[:-1]  # [T-1, 3] per-frame velocity
    speed = v.norm(dim=-1)
    # Frames are spread along the path: no frame moves more than 2x the mean or stalls.
    assert speed.max() < 2.0 * speed.mean() and speed.min() > 0.3 * speed.mean()
    # C1: velocity changes little from one frame to the next (a kink at a keyframe would not).
    assert (v[1:] - v[:-1]).norm(dim=-1).max() < 0.15 * speed.mean()
    # Rotation: angular velocity is continuous too (squad with matched tangents).
    R = poses[:, :3, :3].double()
    rel = R[:-1].transpose(1, 2) @ R[1:]
    q = rotmat_to_quat(rel)
    omega = 2 * q[:, 1:]  # small-angle rotation vectors [T-1, 3] in body coordinates
    assert (omega[1:] - omega[:-1]).norm(dim=-1).max() < 0.01


def test_keyframes_world_units_and_implicit_start(tmp_path):
    start = _tilted_start()
    data = {
        "units": "world",
        "keyframes": [
            {"position": [0, -1, 5], "look_at": [0, -1, 10]},
            {"position": [3, -1, 8], "quat": [1, 0, 0, 0]},
        ],
    }
    path = KeyframePath.from_json(_write(tmp_path, data), start, 7.0, num_frames=30)
    assert torch.equal(path.pose(0), start.c2w)  # the flight starts at the photo
    assert len(path.keyframe_frames) == 2 and 0 < path.keyframe_frames[0] < 29
    assert torch.allclose(path.pose(path.keyframe_frames[0])[:3, 3], torch.tensor([0.0, -1.0, 5.0]), atol=1e-5)
    want = torch.tensor([[1.0, 0, 0, 3], [0, 1, 0, -1], [0, 0, 1, 8], [0, 0, 0, 1]])
    assert torch.allclose(path.pose(29), want, atol=1e-6)
    _assert_rigid_roll_free(path.poses())


def test_keyframes_pure_rotation_segment(tmp_path):
    data = [
        {"position": [0, 0, 0], "look_at": [0, 0, 1]},
        {"position": [0, 0, 0], "look_at": [1, 0, 0]},
        {"position": [1, 0, 0], "look_at": [2, 0, 0]},
    ]
    path = KeyframePath.from_json(_write(tmp_path, data), _start(), 1.0, num_frames=40)
    t1 = path.keyframe_frames[1]
    assert 3 < t1 < 36  # the turn on the spot gets frames of its own
    poses = path.poses()
    assert torch.allclose(poses[: t1 + 1, :3, 3], torch.zeros(t1 + 1, 3), atol=1e-6)  # no drift while turning
    _assert_rigid_roll_free(poses)


K0 = {"position": [0, 0, 0], "look_at": [0, 0, 1]}  # a valid first keyframe


def _two(second: object, first: object = K0) -> list:
    return [first, second]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"keyframes": [ {"position": [0,0,0], }', "keyframes.json: invalid JSON at line 1"),
        ('[{"position": [0,0,0], "look_at": [0,0,NaN]}, {}]', "NaN at line 1 is not allowed"),
        ([K0], "needs at least 2 keyframes, got 1"),
        ({"keyframes": []}, "needs at least 2 keyframes, got 0"),
        ({"frames": []}, "unknown top-level key 'frames'"),
        ({"units": "metres", "keyframes": []}, "'units' must be"),
        ("42", "expected a list of keyframes, got a number"),
        (_two({"look_at": [0, 0, 2]}), "keyframe 1: missing 'position'"),
        (
            _two({"position": [0, 0], "look_at": [0, 0, 2]}),
            "keyframes.json: keyframe 1: 'position' must be 3 finite numbers, got [0, 0]",
        ),
        (_two({"position": [0, 0, "x"], "look_at": [0, 0, 2]}), "keyframe 1: 'position' must be 3 finite numbers"),
        (_two({"position": [True, 0, 1], "look_at": [0, 0, 2]}), "keyframe 1: 'position' must be 3 finite numbers"),
        (_two({"position": [0, 0, 1]}), "keyframe 1: give exactly one of"),
        (_two({"position": [0, 0, 1], "look_at": [0, 0, 2], "quat": [1, 0, 0, 0]}), "keyframe 1: give exactly one of"),
        (_two({"position": [0, 0, 1], "quat": [1, 0, 0]}), "keyframe 1: 'quat' must be 4 finite numbers"),
        (_two({"position": [0, 0, 1], "quat": [0, 0, 0, 0]}), "keyframe 1: 'quat' must not be all zeros"),
        (_two(K0, {"position": [0, 0, 0], "look_at": [0, 0, 0]}), "keyframe 0: 'look_at' must differ"),
        (_two(K0, {**K0, "fov": 50}), "keyframe 0: unknown key 'fov'"),
        (_two([0, 0, 1]), "keyframe 1: must be an object"),
    ],
)
def test_keyframe_json_errors_are_one_clear_line(tmp_path, content, message):
    f = _write(tmp_path, content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(UserInputError) as e:
        KeyframePath.from_json(f, _start(), 1.0, num_frames=30)
    text = str(e.value)
    assert message in text
    assert "\n" not in text and text.startswith("keyframes.json: ")


def test_keyframe_file_problems(tmp_path):
    with pytest.raises(UserInputError, match="keyframe file not found"):
        KeyframePath.from_json(tmp_path / "nope.json", _start(), 1.0, 30)
    f = _write(tmp_path, KEYFRAMES)
    with pytest.raises(UserInputError, match="4 keyframes need at least 4 frames"):
        KeyframePath.from_json(f, _start(), 1.0, 3)


# =============================================================================== factory
def test_make_path_kinds_and_errors(tmp_path):
    start = _start()
    assert isinstance(make_path("forward", start, 1.0, 10, speed=0.1), ForwardPath)
    assert isinstance(make_path("loop", start, 1.0, 10), LoopPath)
    assert isinstance(make_path("autopilot", start, 1.0, 10, altitude=0.3), AutopilotPath)
    kf = make_path(str(_write(tmp_path, KEYFRAMES)), start, 1.0, 20, speed=0.02)  # speed accepted, unused
    assert isinstance(kf, KeyframePath)
    back = make_path("forward", start, 1.0, 11, retrace=True)
    assert isinstance(back, RetracePath) and torch.equal(back.pose(10), start.c2w)
    assert torch.equal(back.pose(3), back.pose(7))
    for kind in ["sideways", "", "path.yaml"]:
        with pytest.raises(UserInputError, match="unknown path"):
            make_path(kind, start, 1.0, 10)
    with pytest.raises(UserInputError, match="unknown option 'sped'"):
        make_path("forward", start, 1.0, 10, sped=0.1)
    with pytest.raises(UserInputError, match="unknown option 'speeed'"):
        make_path("autopilot", start, 1.0, 10, speeed=0.1)
    with pytest.raises(UserInputError, match="keyframe file not found"):
        make_path(str(tmp_path / "missing.json"), start, 1.0, 10)
    with pytest.raises(UserInputError, match="at least 2 frames"):
        make_path("loop", start, 1.0, 1)


# =============================================================================== autopilot
def _terrain_altitude(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Height of the ground above y = 0 (altitude = -y) at world (x, z): rolling hills and a ridge ~3 high."""
    return (
        1.3 * torch.sin(0.31 * x + 0.4) * torch.sin(0.27 * z + 1.1)
        + 0.6 * torch.sin(0.13 * z + 0.23 * x)
        + 0.35 * torch.cos(0.7 * z - 0.45 * x + 0.3)
        + 0.12 * torch.sin(1.9 * x + 1.3 * z)
        + 2.0 * torch.relu(torch.sin(0.09 * z - 0.5))  # a big ridge across the way ahead
    )


_MARCH = torch.logspace(math.log10(0.02), math.log10(60.0), 64)  # [S] sample distances along each ray


def _render_terrain(camera: Camera) -> Frame:
    """Ray-cast the height field: z-depth [H, W] (inf where no hit within 60 units) and sky mask.

    Marches each ray at log-spaced distances, then bisects the first above/below bracket.
    """
    d = camera.rays_world()  # [H, W, 3] unit
    o = camera.position

    def above(s: torch.Tensor) -> torch.Tensor:  # s [H, W, ...] distances -> height above ground
        x = o[0] + d[..., 0].reshape(d.shape[:2] + (1,) * (s.ndim - 2)) * s
        y = o[1] + d[..., 1].reshape(d.shape[:2] + (1,) * (s.ndim - 2)) * s
        z = o[2] + d[..., 2].reshape(d.shape[:2] + (1,) * (s.ndim - 2)) * s
        return -y - _terrain_altitude(x, z)

    H, W = d.shape[:2]
    below = above(_MARCH.expand(H, W, -1)) <= 0  # [H, W, S]
    hit = below.any(-1)
    i = below.to(torch.uint8).argmax(-1)  # first sample under ground
    lo = torch.where(i > 0, _MARCH[(i - 1).clamp_min(0)], torch.zeros(()))
    hi = _MARCH[i]
    for _ in range(6):
        mid = 0.5 * (lo + hi)
        under = above(mid) <= 0
        hi, lo = torch.where(under, mid, hi), torch.where(under, lo, mid)
    z = 0.5 * (lo + hi) * (d @ camera.rotation[:, 2])  # ray distance -> z-depth
    depth = torch.where(hit, z, torch.full_like(z, math.inf))
    return Frame(torch.zeros(H, W, 3), depth, ~hit, camera)


def _start_over_terrain(height: float) -> Camera:
    p = torch.tensor([0.0, -(float(_terrain_altitude(torch.tensor(0.0), torch.tensor(0.0))) + height), 0.0])
    return _start(look_at(p, p + torch.tensor([0.0, 0.0, 1.0])))


def _median_depth(frame: Frame) -> float:
    return float(frame.depth[~frame.sky].median())


def test_autopilot_flies_500_frames_over_hills_without_touching_ground():
    start = _start_over_terrain(height=0.8)
    frame = _render_terrain(start)
    scale = _median_depth(frame)  # what the generator does
    T = 500
    path = AutopilotPath(start, scale, T, speed=0.02)
    poses, prev = [], None
    clearance = []
    for t in range(T):
        c2w = path.pose(t, prev)
        cam = start.with_pose(c2w)
        poses.append(c2w)
        p = cam.position
        clearance.append(float(-p[1] - _terrain_altitude(p[0], p[2])))
        prev = _render_terrain(cam)
    poses = torch.stack(poses)
    clearance = torch.tensor(clearance)
    _assert_rigid_roll_free(poses)

    # Never touches the ground: always well above it (it starts 0.8 up, about 0.13 scale).
    assert clearance.min() > 0.08 * scale, f"min clearance {clearance.min():.3f}, scale {scale:.3f}"
    # ... and does not escape to the sky either (holds roughly its altitude).
    assert clearance.max() < 1.0 * scale
    # Constant speed, and every step goes forward (along where the camera looks).
    p = poses[:, :3, 3]
    steps = p[1:] - p[:-1]
    assert torch.allclose(steps.norm(dim=-1), torch.full((T - 1,), 0.02 * scale), rtol=1e-4)
    assert ((steps * poses[:-1, :3, 2]).sum(-1) > 0.5 * 0.02 * scale).all()
    # Gets somewhere: the net distance covered is a good part of the path length (no circling).
    assert (p[-1] - p[0]).norm() > 0.4 * 0.02 * scale * (T - 1)
    # It must have climbed over the ridge: the terrain under it rose a lot on the way.
    ground = _terrain_altitude(p[:, 0], p[:, 2])
    assert ground.max() - ground[0] > 0.5


def test_autopilot_descends_gently_when_too_high_and_keeps_the_horizon():
    start = _start_over_terrain(height=0.8)
    scale = _median_depth(_render_terrain(start))
    high = start.c2w.clone()
    high[1, 3] -= 1.2 * scale  # far above the altitude it aims for
    path = AutopilotPath(start.with_pose(high), scale, 150)
    prev, alt, sky = None, [], []
    for t in range(150):
        cam = start.with_pose(path.pose(t, prev))
        prev = _render_terrain(cam)
        alt.append(float(-cam.position[1]))
        sky.append(float(prev.sky.float().mean()))
    alt = torch.tensor(alt)
    drop = alt[:-1] - alt[1:]
    assert alt[-1] < alt[0] - 0.15 * scale  # came down (4 degrees x 149 steps of 0.02 is 0.21)
    assert drop.max() <= 0.02 * scale * math.sin(math.radians(4.0)) + 1e-5  # gently (max descent 4 degrees)
    assert abs(sum(sky[-30:]) / 30 - 0.35) < 0.1  # horizon framed near 35% from the top


_TRUNKS = ((0.05, 1.2), (0.45, 2.6), (-0.5, 3.4), (0.1, 4.6))  # (x, z) of tall trunks, 0.12 wide, on flat ground
_TRUNK_R, _FLOOR, _CROWNS = 0.06, 0.2, 1.2  # the camera starts 0.2 above the floor (y = +0.2, y down), as a photo
# taken standing; the crowns are a roof 1.2 above the floor from z = 0.8 on


def _render_forest(camera: Camera) -> Frame:
    """Ray-cast a forest as a photo's depth lifts it: flat ground at y = _FLOOR, trunks, and the crowns as a roof
    that hides the sky once the camera is under it: z-depth [H, W] (inf where nothing is hit) and sky mask."""
    d = camera.rays_world()  # [H, W, 3] unit
    o = camera.position
    t = torch.where(d[..., 1] > 1e-6, (_FLOOR - o[1]) / d[..., 1].clamp_min(1e-6), torch.full_like(d[..., 0], math.inf))
    tr = (_FLOOR - _CROWNS - o[1]) / torch.where(d[..., 1] < -1e-6, d[..., 1], torch.full_like(t, -1e-6))
    roof = (d[..., 1] < -1e-6) & (tr > 0) & (o[2] + tr * d[..., 2] > 0.8)
    t = torch.where(roof & (tr < t), tr, t)
    a = (d[..., 0] ** 2 + d[..., 2] ** 2).clamp_min(1e-12)
    for x0, z0 in _TRUNKS:
        ox, oz = o[0] - x0, o[2] - z0
        b = ox * d[..., 0] + oz * d[..., 2]
        disc = b * b - a * (ox * ox + oz * oz - _TRUNK_R**2)
        tc = (-b - disc.clamp_min(0).sqrt()) / a
        y = o[1] + tc * d[..., 1]
        hit = (disc > 0) & (tc > 0) & (y < _FLOOR) & (y > _FLOOR - _CROWNS)
        t = torch.where(hit & (tc < t), tc, t)
    depth = t * (d @ camera.rotation[:, 2])
    sky = ~torch.isfinite(depth)
    return Frame(torch.zeros(d.shape[:2] + (3,)), depth, sky, camera)


@pytest.mark.parametrize("ceiling", [True, False])
def test_autopilot_flies_under_and_round_trees_not_over_them(ceiling):
    """Under trees the climb rule alone ("pass every point ahead `altitude` above it") climbs up to the crowns
    (over real forest photos: 10 scene units in 180 frames, into a bowl of streaks); with the ceiling
    (`max_clearance`, off by default) the camera stays within it of the ground and steers round the trunks."""
    start = _start(look_at(torch.zeros(3), torch.tensor([0.0, 0.0, 1.0])), size=(64, 48))
    cfg = AutopilotConfig(max_clearance=0.5) if ceiling else AutopilotConfig()  # (the default: no ceiling)
    T = 260  # 5.2 units of flight: past the last trunk
    path = AutopilotPath(start, 1.0, T, config=cfg)
    prev, pos = None, []
    for t in range(T):
        cam = start.with_pose(path.pose(t, prev))
        pos.append(cam.position.clone())
        prev = _render_forest(cam)
    pos = torch.stack(pos)  # [T, 3]
    height = _FLOOR - pos[:, 1]
    trunk_gap = torch.stack([torch.hypot(pos[:, 0] - x0, pos[:, 2] - z0) for x0, z0 in _TRUNKS]).min(0).values
    if not ceiling:  # the rule without its ceiling: up into the crowns (the failure this guards against)
        assert height.max() > _CROWNS - 0.1
        return
    assert height.max() < cfg.max_clearance + 0.05, f"climbed to {height.max():.2f}"
    assert height.min() > 0.05  # never down into the floor
    assert trunk_gap.min() > _TRUNK_R + 0.02, f"through a trunk: {trunk_gap.min():.3f} from its axis"
    assert pos[-1, 2] > 3.0  # and on through the forest, not turned back


_LOW_FLOOR = 0.3  # flat ground 0.3 below a camera at the origin (y down): above `altitude` (0.2), so it descends


def _render_hill(camera: Camera, x_range: tuple[float, float]) -> Frame:
    """Ray-cast flat ground at y = _LOW_FLOOR and a box hill on it, x in `x_range`, z in [0.6, 1.4], its top 0.6
    above the origin: z-depth [H, W] (inf where nothing is hit) and sky mask."""
    d = camera.rays_world()  # [H, W, 3] unit
    o = camera.position
    down = d[..., 1] > 1e-6
    t = torch.where(down, (_LOW_FLOOR - o[1]) / d[..., 1].clamp_min(1e-6), torch.full_like(d[..., 0], math.inf))
    lo = torch.tensor([x_range[0], -0.6, 0.6]) - o
    hi = torch.tensor([x_range[1], _LOW_FLOOR, 1.4]) - o
    safe = torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
    ta, tb = lo / safe, hi / safe  # slab entry and exit along each axis
    near, far = torch.minimum(ta, tb).max(-1).values, torch.maximum(ta, tb).min(-1).values
    box = (near < far) & (near > 0)
    t = torch.where(box & (near < t), near, t)
    depth = t * (d @ camera.rotation[:, 2])
    return Frame(torch.zeros(d.shape[:2] + (3,)), depth, ~torch.isfinite(depth), camera)


@pytest.mark.parametrize("beside", [True, False])
def test_autopilot_climbs_for_a_hill_in_its_corridor_not_beside_it(beside):
    """The climb reads only the corridor ahead (`corridor` half-wide, 0.3): a hill 0.45 to the side, outside it,
    does not make the camera climb (over the low ground it keeps descending); the same hill on the path does."""
    start = _start(look_at(torch.zeros(3), torch.tensor([0.0, 0.0, 1.0])))
    path = AutopilotPath(start, 1.0, 25)
    prev, alt = None, []
    for t in range(25):
        cam = start.with_pose(path.pose(t, prev))
        alt.append(float(-cam.position[1]))
        prev = _render_hill(cam, (0.45, 1.2) if beside else (-0.3, 0.3))
        if t == 0:
            hill = torch.isfinite(prev.depth) & (prev.depth * cam.rays_cam()[..., 1] < _LOW_FLOOR - 1e-3)
            assert hill.sum() > 20  # the hill is in view
    alt = torch.tensor(alt)
    if beside:
        assert (alt[1:] <= alt[:-1] + 1e-6).all(), f"climbed {float(alt.max() - alt[0]):.4f} for a hill beside"
        assert alt[-1] < alt[0]
    else:
        assert alt[-1] > alt[0] + 0.1


def test_autopilot_climbs_twice_as_fast_as_it_descends():
    """The flight path angle follows its target with the smoothing, except that climbing reacts twice as fast
    as descending (safety first): with climb and descent both limited to 4 degrees, a wall close ahead (climb at
    the limit) raises the first step twice as much as all sky (descent at the limit) lowers it."""
    start = _start()
    H, W = start.height, start.width
    cfg = AutopilotConfig(max_climb_deg=4.0, max_descent_deg=4.0)
    wall = (torch.full((H, W), 0.5), torch.zeros(H, W, dtype=torch.bool))
    sky = (torch.full((H, W), math.inf), torch.ones(H, W, dtype=torch.bool))
    dy = {}
    for name, (depth, mask) in {"climb": wall, "descent": sky}.items():
        path = AutopilotPath(start, 1.0, 3, config=cfg)
        y0 = float(path.pose(0)[1, 3])
        y1 = float(path.pose(1, Frame(torch.zeros(H, W, 3), depth, mask, start))[1, 3])
        dy[name] = y0 - y1  # > 0: up (y down)
    step, k = 0.02, 1 - cfg.smoothing
    assert dy["descent"] == pytest.approx(-step * math.sin(k * math.radians(4.0)), rel=1e-3)
    assert dy["climb"] == pytest.approx(step * math.sin(2 * k * math.radians(4.0)), rel=1e-3)


@pytest.mark.parametrize("kind", ["all_sky", "no_sky", "nan_depth", "zero_depth"])
def test_autopilot_survives_degenerate_frames(kind):
    start = _start()
    H, W = start.height, start.width
    path = AutopilotPath(start, 1.0, 60)
    prev = None
    poses = []
    for t in range(60):
        c2w = path.pose(t, prev)
        poses.append(c2w)
        cam = start.with_pose(c2w)
        if kind == "all_sky":
            depth, sky = torch.full((H, W), math.inf), torch.ones(H, W, dtype=torch.bool)
        elif kind == "no_sky":
            depth, sky = torch.full((H, W), 0.5), torch.zeros(H, W, dtype=torch.bool)
        elif kind == "nan_depth":
            depth, sky = torch.full((H, W), math.nan), torch.zeros(H, W, dtype=torch.bool)
        else:
            depth, sky = torch.zeros(H, W), torch.zeros(H, W, dtype=torch.bool)
        prev = Frame(torch.zeros(H, W, 3), depth, sky, cam)
    poses = torch.stack(poses)
    _assert_rigid_roll_free(poses)
    alt = -poses[:, 1, 3]
    if kind == "all_sky":  # nothing to see: look down and descend gently
        assert alt[-1] < alt[0] and (poses[-1, :3, 2] @ UP) < 0
    if kind == "no_sky":  # a wall close ahead: climb and look up, but no higher than max_pitch_up_deg
        look_up = torch.rad2deg(torch.asin(poses[:, :3, 2] @ UP))
        assert alt[-1] > alt[0] + 0.1 and look_up[-1] > 5.0
        assert look_up.max() <= AutopilotConfig().max_pitch_up_deg + 1e-3


def test_autopilot_brings_a_steep_start_pitch_down_gradually():
    """A photo taken looking 20 degrees up starts there and comes down to the upward limit at the
    pitch rate, without a jump."""
    start = _start()
    H, W = start.height, start.width
    tilt = torch.tensor(math.radians(20.0))
    R = torch.tensor([[1.0, 0, 0], [0, math.cos(tilt), -math.sin(tilt)], [0, math.sin(tilt), math.cos(tilt)]])
    c2w = start.c2w.clone()
    c2w[:3, :3] = c2w[:3, :3] @ R  # the same camera pitched up 20 degrees (y down, z forward)
    path = AutopilotPath(start.with_pose(c2w), 1.0, 30)
    prev, up = None, []
    for t in range(30):
        cam = start.with_pose(path.pose(t, prev))
        up.append(float(torch.rad2deg(torch.asin(cam.rotation[:, 2] @ UP))))
        prev = Frame(torch.zeros(H, W, 3), torch.full((H, W), 0.5), torch.zeros(H, W, dtype=torch.bool), cam)
    cfg = AutopilotConfig()
    assert abs(up[0] - 20.0) < 0.1
    steps = [a - b for a, b in zip(up[:-1], up[1:])]
    assert max(steps) <= cfg.max_pitch_rate_deg + 1e-3  # never faster than the pitch rate
    assert abs(up[-1] - cfg.max_pitch_up_deg) < 1e-3  # settled at the limit (no sky: it would look up)


def test_autopilot_order_and_restart():
    start = _start_over_terrain(0.8)
    path = AutopilotPath(start, 4.0, 20)
    a0 = path.pose(0)
    a1 = path.pose(1, _render_terrain(start))
    assert torch.equal(path.pose(1), a1)  # asking again for the latest frame
    with pytest.raises(ValueError, match="in order"):
        path.pose(5)
    assert torch.equal(path.pose(0), a0) and torch.equal(a0, start.c2w)
    assert torch.equal(path.pose(1, _render_terrain(start)), a1)  # deterministic after a restart
    with pytest.raises(RuntimeError):
        path.poses()


@pytest.mark.parametrize("first", [0, 1])  # the generator may skip pose(0): frame 0 is the photo itself
def test_autopilot_retrace_replays_its_flight(first):
    start = _start_over_terrain(0.8)
    prev = _render_terrain(start)
    path = make_path("autopilot", start, _median_depth(prev), 41, retrace=True)
    poses = [start.c2w]
    for t in range(first, 41):
        c2w = path.pose(t, prev)
        if t > 0:
            poses.append(c2w)
        prev = _render_terrain(start.with_pose(c2w))
    assert not torch.equal(poses[1], poses[0])
    for t in range(41):
        assert torch.equal(poses[t], poses[40 - t])


def test_docs_keyframe_example_parses(tmp_path):
    """The example in docs/paths.md is a valid keyframe file."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "paths.md").read_text()
    example = doc.split("```json\n", 1)[1].split("```", 1)[0]
    path = KeyframePath.from_json(_write(tmp_path, example), _start(), 2.0, num_frames=60)
    assert len(path.keyframe_frames) == 4 and path.keyframe_frames[0] == 0
    _assert_rigid_roll_free(path.poses())


def _coarse_view(frame: Frame, max_width: int) -> tuple[Camera, torch.Tensor, torch.Tensor]:
    """The steering's coarse view with the camera as a Camera (the reference the autopilot's numpy one,
    `_coarse_maps`, is checked against): `frame` reduced by an integer factor to at most `max_width` pixels."""
    from worldgen.pipeline.paths.autopilot import _pool_maps

    cam = frame.camera.to("cpu")
    f = max(1, math.ceil(cam.width / max(1, max_width)))
    if f == 1:
        return cam, frame.sky, frame.depth
    h, w = cam.height // f, cam.width // f
    both = _pool_maps(frame, f, h, w)
    sky_s, depth_s = both[0] > 0.5, both[1]
    return Camera(K=cam.K, c2w=cam.c2w, width=w * f, height=h * f).resized(w, h), sky_s, depth_s


def test_autopilot_steers_from_a_conservative_coarse_view():
    cam = Camera.from_fov(60.0, 256, 128)
    depth = torch.full((128, 256), 50.0)
    depth[:40] = math.inf
    depth[100, 10] = 2.0  # one near pixel: its block must keep it
    depth[60, 60] = float("nan")
    frame = Frame(torch.zeros(128, 256, 3), depth, torch.isinf(depth), cam)
    small, sky, d = _coarse_view(frame, 64)
    assert (small.width, small.height) == (64, 32) and math.isclose(small.fov_x_deg, cam.fov_x_deg, rel_tol=1e-5)
    assert sky[:10].all() and not sky[10:].any()
    assert d[25, 2] == 2.0 and torch.isfinite(d[10:]).all()
    assert torch.isposinf(d[:10]).all()


def test_the_autopilots_numpy_view_is_the_coarse_cameras():
    """The steering reads the coarse view as numpy (no torch operations per frame): the same intrinsics, pose and
    rays as `_coarse_view`'s camera, to the bit, and the same maps."""
    from worldgen.pipeline.paths.autopilot import _coarse_maps, _rays_cam

    cam = Camera.from_fov(73.0, 250, 130)  # (not a multiple of the factor: the maps are cropped)
    depth = 5.0 + torch.rand(130, 250) * 40
    depth[:30] = math.inf
    frame = Frame(torch.zeros(130, 250, 3), depth, torch.isinf(depth), cam)
    for width in (64, 250):
        small, sky, d = _coarse_view(frame, width)
        K, c2w, sky2, d2 = _coarse_maps(frame, width)
        np.testing.assert_array_equal(K, small.K.numpy().astype(np.float64))
        np.testing.assert_array_equal(c2w, small.c2w.numpy().astype(np.float64))
        np.testing.assert_array_equal(sky.numpy(), sky2)
        np.testing.assert_array_equal(d.numpy().astype(np.float64), d2)
        np.testing.assert_array_equal(_rays_cam(K, small.height, small.width),
                                      small.rays_cam().numpy().astype(np.float64))
