"""The viser viewer: conversions, loading, the server's life cycle, the live engine, and real-browser
end-to-end checks (Debian's headless chromium with SwiftShader WebGL).

Browser checks take a screenshot with viewer/snapshot.py (the one used for the docs' images): `chromium --headless
--screenshot` of a small wrapper page that frames the viewer and holds one image whose download is delayed until the
viewer's websocket client has connected and had a moment to receive the scene, so the load event (and the capture) does
not come before the world. The scene fades in over a few rendered frames, so colour checks compare hues, not exact
values.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import signal
import socket
import subprocess
import textwrap
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import viser  # noqa: E402,F401  (a declared dependency: a broken install fails here instead of skipping)

from viewer.app import SplatDisplay, start_server  # noqa: E402
from viewer.browse import BrowseApp, load_world  # noqa: E402
from viewer.cli import LiveConfig  # noqa: E402
from viewer.live import LiveApp, LiveEngine  # noqa: E402
from viewer.snapshot import snapshot  # noqa: E402
from viewer.splats import c2w_from_wxyz_position, decimation_mask, frustum_pose, splat_arrays  # noqa: E402
from worldgen.core.camera import Camera, look_at, quat_to_rotmat  # noqa: E402
from worldgen.core.images import side_by_side, to_uint8  # noqa: E402
from worldgen.core.io import UserInputError  # noqa: E402
from worldgen.pipeline.config import PhotoConfig, PipelineConfig  # noqa: E402
from worldgen.core.scene import GaussianScene  # noqa: E402

HOST = "127.0.0.1"


# ---------------------------------------------------------------------------------------- helpers
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """True if a new server could listen on `port` now. SO_REUSEADDR (as servers set it) tolerates
    connections left in TIME_WAIT by the test's own fetch, but not a socket still listening."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def block_scene(n: int = 14, depth: int = 10, centre_z: float = 5.0) -> GaussianScene:
    """A red block of n*n*depth Gaussians (2 units wide, 1.4 deep) centred at (0, 0, centre_z)."""
    axes = [torch.linspace(-1, 1, n), torch.linspace(-1, 1, n), torch.linspace(-0.7, 0.7, depth)]
    g = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    N = g.shape[0]
    colors = torch.zeros(N, 3)
    colors[:, 0] = 1.0
    colors[:, 1] = 0.15 * (g[:, 1] + 1)
    return GaussianScene(
        means=g + torch.tensor([0.0, 0.0, centre_z]),
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(N, 1),
        log_scales=torch.full((N, 3), math.log(0.09)),
        opacity_logits=torch.full((N,), 4.0),
        colors=colors,
    )


def write_run(dirpath: Path, scene: GaussianScene, cameras: list[Camera]) -> Path:
    dirpath.mkdir(parents=True, exist_ok=True)
    scene.save_ply(dirpath / "world.ply")
    (dirpath / "cameras.json").write_text(json.dumps({"frames": [c.to_dict() for c in cameras]}))
    return dirpath


SKY = (230, 40, 200)  # magenta sky: a colour the viewer's own UI never uses
GROUND = (40, 150, 60)


def tiny_photo(tmp: Path, W: int = 48, H: int = 32) -> tuple[Path, Path]:
    """A 48x32 landscape (magenta sky over textured green ground) and its z-depth (.npy, inf = sky)."""
    rng = np.random.default_rng(0)
    img = np.zeros((H, W, 3), np.uint8)
    horizon = H // 3
    img[:horizon] = SKY
    img[horizon:] = GROUND
    img[horizon:] = np.clip(img[horizon:] + rng.integers(-25, 25, (H - horizon, W, 1)), 0, 255)
    fy = 0.5 * W / math.tan(math.radians(30))
    v = np.arange(H) + 0.5
    ground = 1.0 * fy / np.maximum(v - H / 2, 0.5)  # camera 1 unit above a flat ground
    depth = np.repeat(np.minimum(ground, 40.0)[:, None], W, 1).astype(np.float32)
    depth[:horizon] = np.inf
    Image.fromarray(img).save(tmp / "photo.png")
    np.save(tmp / "photo_depth.npy", depth)
    return tmp / "photo.png", tmp / "photo_depth.npy"


def live_config(tmp: Path, speed: float = 0.02, **kw) -> LiveConfig:
    photo, depth = tiny_photo(tmp)
    return LiveConfig(image=str(photo), photo=PhotoConfig(depth=str(depth)),
                      pipeline=PipelineConfig(size="48x32", device="cpu", speed=speed), out=str(tmp / "live"), **kw)


# ---------------------------------------------------------------------------------------- chromium
@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; the suite installs nothing (`make test` does: scripts/system-deps.sh --browser)."""
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("Debian's chromium is not installed: `make test` installs it (or `apt-get install -y chromium`)")
    return exe


def screenshot(chromium: str, viser_server, out: Path, size=(800, 600)) -> np.ndarray:
    """int32 [H, W, 3] screenshot of the viewer served by `viser_server`: viewer/snapshot.py's wrapper page and
    headless chromium, captured `settle` seconds after a viewer client has connected."""
    try:
        img = snapshot(viser_server, out, size=size, settle=2.5, timeout=90.0, chromium=chromium)
    except RuntimeError as e:
        pytest.fail(str(e))
    return img.astype(np.int32)


def screenshot_until(chromium, viser_server, out: Path, ok, tries: int = 3, size=(800, 600)) -> np.ndarray:
    """Screenshots until `ok(image)` holds (software WebGL's timing varies), at most `tries`."""
    for k in range(tries):
        img = screenshot(chromium, viser_server, out.with_name(f"{out.stem}_{k}.png"), size)
        if ok(img):
            return img
    return img


def reddish(img: np.ndarray) -> np.ndarray:
    """[H, W] bool: red-hued pixels (the block's colour, also while the scene is still fading in)."""
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return (r - g > 50) & (r - b > 50)


def magenta(img: np.ndarray) -> np.ndarray:
    """[H, W] bool: pixels of the test photo's sky hue."""
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return (r - g > 60) & (b - g > 50)


def runs(mask_row: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of the runs of True in a 1-D bool array."""
    padded = np.concatenate([[False], mask_row, [False]]).astype(np.int8)
    d = np.diff(padded)
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return [(int(s), int(e - s)) for s, e in zip(starts, ends)]


# ---------------------------------------------------------------------------------------- conversions
def test_splat_arrays_covariance_colour_clamp_and_opacity():
    q = torch.tensor([[math.cos(math.pi / 8), 0.0, 0.0, math.sin(math.pi / 8)]])  # 45 deg about z, wxyz
    scene = GaussianScene(
        means=torch.tensor([[1.0, 2.0, 3.0]]), quats=q, log_scales=torch.log(torch.tensor([[0.1, 0.2, 0.3]])),
        opacity_logits=torch.tensor([0.0]), colors=torch.tensor([[1.3, -0.2, 0.5]]))
    a = splat_arrays(scene)
    R = quat_to_rotmat(q)[0].numpy()
    expected = R @ np.diag([0.01, 0.04, 0.09]) @ R.T
    np.testing.assert_allclose(a.covariances[0], expected, atol=1e-6)
    assert abs(a.covariances[0, 0, 1]) > 1e-3  # the rotation really mixes x and y
    np.testing.assert_allclose(a.rgbs[0], [1.0, 0.0, 0.5])  # clamped for display only
    assert scene.colors[0, 0] == pytest.approx(1.3)
    np.testing.assert_allclose(a.opacities, [[0.5]])
    assert a.centers.shape == (1, 3) and a.opacities.shape == (1, 1)


def test_decimation_is_deterministic_and_batch_independent():
    idx = torch.arange(10_000)
    m = decimation_mask(idx, 0.25)
    assert 2400 <= int(m.sum()) <= 2600
    assert torch.equal(m[5000:], decimation_mask(idx[5000:], 0.25))  # a chunk decides like the whole
    assert bool(decimation_mask(idx, 1.0).all())


@pytest.mark.parametrize("fraction", [0.25, 0.5])
def test_decimated_splats_are_enlarged_to_keep_the_surface_covered(fraction):
    """A decimated display keeps the Gaussians of `decimation_mask` and enlarges each by 1/sqrt(fraction) along
    every axis (covariance / fraction), so the kept ones still cover the surface; the saved world is untouched."""
    g = torch.Generator().manual_seed(0)
    n = 400
    q = torch.randn(n, 4, generator=g)
    scene = GaussianScene(means=torch.randn(n, 3, generator=g), quats=q / q.norm(dim=1, keepdim=True),
                          log_scales=torch.randn(n, 3, generator=g) - 3, opacity_logits=torch.randn(n, generator=g),
                          colors=torch.rand(n, 3, generator=g))
    before = scene.log_scales.clone()
    full, dec = splat_arrays(scene), splat_arrays(scene, fraction=fraction)
    keep = decimation_mask(torch.arange(n), fraction).numpy()
    assert 0 < len(dec) == int(keep.sum()) < n
    np.testing.assert_array_equal(dec.centers, full.centers[keep])
    np.testing.assert_allclose(dec.covariances, full.covariances[keep] / fraction, rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(dec.opacities, full.opacities[keep])  # only the size changes
    assert torch.equal(scene.log_scales, before)


class _FakeScene:
    """Records add_gaussian_splats calls (stands in for viser's SceneApi in display-logic tests)."""

    def __init__(self):
        self.live: dict[str, int] = {}

    def add_gaussian_splats(self, name, centers, covariances, rgbs, opacities):
        assert centers.shape[0] == covariances.shape[0] == rgbs.shape[0] == opacities.shape[0]
        assert rgbs.min() >= 0 and rgbs.max() <= 1
        self.live[name] = centers.shape[0]
        scene = self

        class Handle:
            def remove(self):
                del scene.live[name]

        return Handle()


def test_splat_display_chunks_growth_and_decimates_above_budget():
    class Server:
        scene = _FakeScene()

    world = block_scene(n=10, depth=10)  # 1000 Gaussians
    disp = SplatDisplay(Server(), budget=1500)
    assert disp.sync(world) == 1000 and not disp.decimated
    world.append(block_scene(n=10, depth=3))  # +300: sent as one more chunk, the first is kept
    assert disp.sync(world) == 300
    assert sorted(Server.scene.live.values()) == [300, 1000]
    assert disp.sync(world) == 0
    world.append(block_scene(n=10, depth=5))  # 1800 > budget: one decimated resend
    disp.sync(world)
    shown = sum(Server.scene.live.values())
    assert disp.decimated and len(Server.scene.live) == 1
    assert 1500 / math.sqrt(2) * 0.95 <= shown <= 1500
    assert "decimated" in disp.status_line().lower() and "1,800" in disp.status_line()
    assert len(world) == 1800  # the world itself is untouched


def test_frustum_pose_round_trip():
    c2w = look_at(torch.tensor([1.0, -2.0, 3.0]), torch.tensor([4.0, 0.5, 9.0]))
    cam = Camera.from_fov(70.0, 64, 40, c2w)
    p = frustum_pose(cam)
    np.testing.assert_allclose(c2w_from_wxyz_position(p.wxyz, p.position), c2w.double().numpy(), atol=1e-6)
    assert p.fov == pytest.approx(2 * math.atan(20 / cam.fy))  # vertical, radians
    assert p.aspect == pytest.approx(1.6)


# ---------------------------------------------------------------------------------------- loading
def test_load_world_run_dir_and_bad_paths(tmp_path):
    second = look_at(torch.tensor([0.0, 0, 0.5]), torch.tensor([0.0, 0, 5]))
    cams = [Camera.from_fov(60, 64, 48), Camera.from_fov(60, 64, 48, second)]
    run = write_run(tmp_path / "run", block_scene(), cams)
    w = load_world(run)
    assert len(w.scene) == 14 * 14 * 10 and len(w.cameras) == 2
    assert len(load_world(run / "world.ply").cameras) == 2  # a PLY picks up the cameras.json beside it
    (tmp_path / "bare").mkdir()
    block_scene().save_ply(tmp_path / "bare" / "w.ply")
    assert len(load_world(tmp_path / "bare" / "w.ply").cameras) == 0  # a bare PLY has no path

    with pytest.raises(UserInputError, match="no such"):
        load_world(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="no world.ply"):
        load_world(tmp_path / "empty")
    (tmp_path / "notes.ply").write_text("hello")
    with pytest.raises(UserInputError, match="not a readable PLY"):
        load_world(tmp_path / "notes.ply")
    (run / "cameras.json").write_text('{"frames": [{"width": 64}]}')
    with pytest.raises(UserInputError, match="frame 0 is not a camera"):
        load_world(run)


def test_cli_view_bad_path_exits_2(tmp_path, capsys):
    from worldgen.cli import entrypoint

    with pytest.raises(SystemExit) as e:
        entrypoint(["view", str(tmp_path / "nope.ply")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("worldgen: error: no such run directory or PLY file")


# ---------------------------------------------------------------------------------------- server
def test_server_serves_page_and_frees_port(tmp_path):
    port = free_port()
    server = start_server(HOST, port)
    try:
        assert server.get_port() == port
        BrowseApp(server, load_world(write_run(tmp_path / "run", block_scene(), [Camera.from_fov(60, 64, 48)])))
        with urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=10) as r:
            assert r.status == 200
            page = r.read().decode("utf-8", "replace").lower()
        assert "<html" in page and "<script" in page
        assert not port_is_free(port)
    finally:
        server.stop()
    assert port_is_free(port)


# ---------------------------------------------------------------------------------------- live engine
def test_live_engine_drives_both_generators_along_the_same_poses(tmp_path):
    eng = LiveEngine.from_config(live_config(tmp_path, path="forward"))
    n0 = eng.persistent.world.size
    s1, s2 = eng.step(), eng.step()
    assert (s1.t, s2.t) == (1, 2)
    assert torch.equal(eng.persistent.prev.camera.c2w, eng.baseline.prev.camera.c2w)
    assert torch.equal(s2.persistent.camera.c2w, s2.baseline.camera.c2w)
    z0 = eng.cameras[0].c2w[:3, 2]
    moved = s2.camera.position - eng.cameras[0].position
    assert float(moved @ z0) == pytest.approx(2 * 0.02 * eng.scale, rel=1e-4)  # forward, speed per frame
    assert eng.persistent.world.size >= n0  # the persistent world keeps what it had
    assert len(eng.shown) == eng.persistent.world.size  # the browser's copy grows with it

    # Steering takes over: manual mode, and a right turn turns the heading right by the step.
    eng.steer(turn_deg=5.0)
    assert eng.mode == "manual"
    f_before = eng.cameras[-1].c2w[:3, 2]
    s3 = eng.step()
    f_after = s3.camera.c2w[:3, 2]
    heading = lambda f: math.atan2(float(f[0]), float(f[2]))  # noqa: E731 (yaw about world down, right > 0)
    yaw = math.degrees(heading(f_after) - heading(f_before))
    assert yaw == pytest.approx(5.0, abs=1e-3)
    assert abs(float(s3.camera.c2w[1, 0])) < 1e-6  # roll-free: the camera's x axis stays horizontal

    ply = eng.export(tmp_path / "export")
    back = GaussianScene.load_ply(ply)
    assert len(back) == eng.persistent.world.size
    torch.testing.assert_close(back.means, eng.persistent.world.full_scene().means)
    assert len(load_world(tmp_path / "export").cameras) == 4  # frame 0..3: `worldgen view` opens the export


def test_live_engine_rejects_bad_settings(tmp_path):
    with pytest.raises(UserInputError, match="speed"):
        LiveEngine.from_config(live_config(tmp_path, speed=-1.0))
    with pytest.raises(UserInputError, match="push-every"):
        LiveEngine.from_config(live_config(tmp_path, push_every=0))


# ---------------------------------------------------------------------------------------- browser
def test_browser_draws_the_saved_world(tmp_path, chromium):
    run = write_run(tmp_path / "run", block_scene(), [Camera.from_fov(60, 64, 48)])
    server = start_server(HOST, 0)
    try:
        BrowseApp(server, load_world(run))
        img = screenshot_until(chromium, server, tmp_path / "browse.png",
                               ok=lambda im: reddish(im)[150:450, 200:600].mean() > 0.2)
    finally:
        server.stop()
    red = reddish(img)
    H, W = red.shape
    assert red[150:450, 200:600].mean() > 0.2, "the block's splats were not drawn in the middle of the view"
    ys, xs = np.nonzero(red)
    assert abs(xs.mean() - W / 2) < 0.15 * W  # the block is where the initial view puts it: centred
    assert red[:, : W // 8].mean() < 0.02 and red[:, -W // 8:].mean() < 0.02  # and not everywhere


def _two_frames_side_by_side(img: np.ndarray) -> bool:
    """Some row holds two sky-coloured runs of about equal length separated by a narrow light gap
    (the panel's persistent | per-frame image)."""
    m = magenta(img)
    for y in np.flatnonzero(m.sum(1) > 60):
        rs = [r for r in runs(m[y]) if r[1] >= 30]
        for (s0, l0), (s1, l1) in zip(rs, rs[1:]):
            gap = s1 - (s0 + l0)
            if 2 <= gap <= 60 and abs(l0 - l1) <= 0.15 * max(l0, l1) and img[y, s0 + l0: s1].min() > 180:
                return True
    return False


def test_browser_live_panel_shows_both_frames(tmp_path, chromium):
    eng = LiveEngine.from_config(live_config(tmp_path, path="forward"))
    server = start_server(HOST, 0)
    app = LiveApp(server, eng, push_every=2, out_dir=tmp_path / "live")
    try:
        app.start(playing=False)
        for _ in range(2):
            app.step_once()
        # Server side: the panel image is exactly persistent | gap | per-frame, at the same frame.
        shown = app.frames_image.image
        f = 4  # 100 px wide, enlarged to >= 400 for the panel
        assert shown.shape == (32 * f, (2 * 48 + 4) * f, 3)
        np.testing.assert_array_equal(shown[::f, ::f], side_by_side([eng.last.persistent.rgb, eng.last.baseline.rgb]))
        np.testing.assert_array_equal(shown[::f, : 48 * f: f], to_uint8(eng.last.persistent.rgb))
        np.testing.assert_array_equal(shown[::f, 52 * f:: f], to_uint8(eng.last.baseline.rgb))
        assert (shown[:, 48 * f: 52 * f] == 255).all()  # the white gap, enlarged with the frames
        assert app.display.sent_upto == eng.persistent.world.size > 0  # the world was pushed at frame 2
        assert "Frame** 2" in app.stats.content
        img = screenshot_until(chromium, server, tmp_path / "live.png", ok=_two_frames_side_by_side, size=(1000, 700))
        assert _two_frames_side_by_side(img), "the side panel does not show the two frames side by side"
        assert reddish(img).mean() < 0.5  # sanity: a real page, not a solid fill
        # Export from the app writes the whole world and says where.
        ply = app.export()
        assert ply is not None and ply.is_file() and str(ply) in app.export_note.content
    finally:
        app.stop()
        server.stop()


# ---------------------------------------------------------------------------------------- as a service
def test_bad_port_or_host_is_one_line_and_exit_2(tmp_path, capsys):
    from worldgen.cli import entrypoint

    run = write_run(tmp_path / "run", block_scene(), [Camera.from_fov(60, 64, 48)])
    photo, depth = tiny_photo(tmp_path)
    for cmd in (["view", str(run)], ["live", str(photo), "--depth", str(depth), "--size", "48x32"]):
        for bad, words in ((["--port", "70000"], "--port"), (["--port", "-1"], "--port"),
                           (["--host", "10.255.255.1"], "cannot listen there"),
                           (["--host", "no-such-host.invalid"], "not an address of this machine")):
            t0 = time.time()
            with pytest.raises(SystemExit) as e:
                entrypoint(cmd + bad)
            err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
            assert e.value.code == 2 and len(err) == 1 and err[0].startswith("worldgen: error:"), (cmd, bad, err)
            assert words in err[0], err
            assert time.time() - t0 < 30  # no hang, no retrying


def test_listen_address_check():
    from viewer.app import check_listen_address, exposure_warning

    assert check_listen_address("127.0.0.1", 0) and check_listen_address("localhost", 8080)
    assert not check_listen_address("0.0.0.0", 0)  # every interface: the network can connect
    assert "anyone" in exposure_warning("0.0.0.0", 8080, "watch") and "8080" in exposure_warning("0.0.0.0", 8080, "x")


def _serve(argv: list[str], tmp_path: Path) -> tuple[str, str]:
    """Run `worldgen ARGV` (a server) until it prints its URL, then Ctrl+C it; (URL line, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "worldgen.cli", *argv], cwd=Path(__file__).resolve().parents[1],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        t0 = time.time()
        while " at http" not in line and time.time() - t0 < 120:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return line, err


def test_exposed_viewers_warn_and_print_the_real_url(tmp_path):
    run = write_run(tmp_path / "run", block_scene(), [Camera.from_fov(60, 64, 48)])
    line, err = _serve(["view", str(run), "--host", "0.0.0.0", "--port", "0"], tmp_path)
    m = re.search(r"at http://0\.0\.0\.0:(\d+) ", line)
    assert m and int(m.group(1)) > 0, line  # the port really bound (0 asked the OS for one)
    assert f"http://127.0.0.1:{m.group(1)}" in line
    assert "warning" in err and "anyone" in err and "watch" in err and "steer" not in err
    photo, depth = tiny_photo(tmp_path)
    line, err = _serve(["live", str(photo), "--depth", str(depth), "--size", "48x32", "--host", "0.0.0.0",
                        "--port", "0", "--paused"], tmp_path)
    assert "at http://0.0.0.0:" in line
    assert "steer" in err and "--read-only" in err
    line, err = _serve(["live", str(photo), "--depth", str(depth), "--size", "48x32", "--port", "0",
                        "--read-only", "--frames", "1"], tmp_path)
    assert "read-only" in line and "http://127.0.0.1:" in line and "warning" not in err


def test_ctrl_c_received_by_another_thread_still_stops_a_server():
    """The kernel may hand a process's SIGINT to any thread; the serving main thread must still stop
    (and stop the app and the server) within a moment, not after its next long sleep."""
    script = textwrap.dedent("""
        import signal, threading, time
        from viewer.cli import _serve_until_interrupted

        class Server:
            def stop(self):
                print("server stopped", flush=True)

        def ctrl_c_from_this_thread():
            time.sleep(0.5)
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # delivered to this thread, not main

        threading.Thread(target=ctrl_c_from_this_thread, daemon=True).start()
        t0 = time.time()
        try:
            _serve_until_interrupted(Server(), "http://x", "testing", before_stop=lambda: print("app stopped"))
        except KeyboardInterrupt:
            print(f"interrupted after {time.time() - t0:.1f} s", flush=True)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[1:3] == ["app stopped", "server stopped"] and lines[3].startswith("interrupted after"), lines
    assert float(lines[3].split()[2]) < 5.0, lines


def test_read_only_live_panel_has_no_controls(tmp_path):
    eng = LiveEngine.from_config(live_config(tmp_path, path="forward"))
    server = start_server(HOST, 0)
    app = LiveApp(server, eng, out_dir=tmp_path / "live", read_only=True)
    try:
        assert app.play_button is None and app.export_note is None and not hasattr(app, "mode_dropdown")
        app.start(playing=False)
        app.step_once()
        assert "Frame** 1" in app.stats.content
    finally:
        app.stop()
        server.stop()
