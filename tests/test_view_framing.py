"""`worldgen view`: where tabs open (the flight's first camera; a bare world's densest region), the
camera path and its playback, progressive streaming, the sky dome as background, and real-browser
checks of what a new tab shows (headless Chromium via viewer/snapshot.py; skipped without chromium,
never installed from here)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import viser  # noqa: E402,F401  (a declared dependency: a broken install fails here instead of skipping)

from tests.flights import tiny_flight  # noqa: E402
from tests.test_viewer import block_scene, write_run  # noqa: E402
from viewer.app import start_server  # noqa: E402
from viewer.browse import BrowseApp, load_world  # noqa: E402
from viewer.framing import densest_point, view_at_camera, view_of_densest  # noqa: E402
from viewer.sky_view import camera_for_view, filled_for_display, sky_image  # noqa: E402
from viewer.snapshot import find_chromium, snapshot  # noqa: E402
from worldgen.core.camera import Camera, look_at  # noqa: E402
from worldgen.core.scene import GaussianScene  # noqa: E402
from worldgen.pipeline.sky import SkyDome  # noqa: E402

HOST = "127.0.0.1"
MAGENTA = (230, 40, 200)


@pytest.fixture
def server():
    s = start_server(HOST, 0)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = find_chromium()
    if exe is None:
        pytest.skip("chromium is not installed (Debian: `apt-get install -y chromium`; not installed by the tests)")
    return exe


def background_fraction(img: np.ndarray) -> float:
    """Fraction of pixels within 12 levels of viser's empty background (white)."""
    return float((np.abs(img.astype(int) - 255).max(-1) <= 12).mean())


def magenta(img: np.ndarray) -> np.ndarray:
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return (r - g > 120) & (b - g > 100)


def cluster_scene(seed: int = 0) -> tuple[GaussianScene, np.ndarray]:
    """4000 Gaussians in a ball of radius 1 at (3, -1, 20), plus 2000 scattered over a 200-unit box."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.tensor([3.0, -1.0, 20.0])
    d = torch.randn(4000, 3, generator=g)
    ball = centre + d / d.norm(dim=1, keepdim=True) * torch.rand(4000, 1, generator=g) ** (1 / 3)
    far = (torch.rand(2000, 3, generator=g) - 0.5) * 200 + torch.tensor([0.0, 0.0, 100.0])
    m = torch.cat([ball, far])
    n = len(m)
    scene = GaussianScene(means=m, quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
                          log_scales=torch.full((n, 3), -3.0), opacity_logits=torch.full((n,), 3.0),
                          colors=torch.rand(n, 3, generator=g))
    return scene, centre.numpy()


# ---------------------------------------------------------------------------------------- framing
def test_view_at_camera_is_the_camera():
    c2w = look_at(torch.tensor([1.0, -2.0, 3.0]), torch.tensor([4.0, 0.0, 12.0]))
    cam = Camera.from_fov(70.0, 96, 64, c2w)
    scene = block_scene(centre_z=0.0)
    scene.means += torch.tensor([4.0, 0.0, 12.0])  # the block where the camera looks, ~9.7 units away
    v = view_at_camera(cam, scene)
    np.testing.assert_allclose(v.position, [1.0, -2.0, 3.0], atol=1e-6)
    fwd = (v.look_at - v.position) / np.linalg.norm(v.look_at - v.position)
    np.testing.assert_allclose(fwd, c2w[:3, 2].double().numpy(), atol=1e-6)  # looks along the camera's +z
    np.testing.assert_allclose(v.up, -c2w[:3, 1].double().numpy(), atol=1e-6)  # image up = -y axis
    assert v.fov == pytest.approx(2 * math.atan(32 / cam.fy))  # vertical, radians
    assert 8.0 < np.linalg.norm(v.look_at - v.position) < 11.0  # orbit pivot: the middle of what it sees
    assert v.near < 8.0 < 11.0 < v.far


def test_bare_world_opens_framed_on_its_densest_region():
    scene, centre = cluster_scene()
    c, r = densest_point(scene.means.double().numpy())
    assert np.linalg.norm(c - centre) < 0.3 and 0.5 < r < 1.5
    v = view_of_densest(scene, fov_deg=60.0)
    np.testing.assert_allclose(v.look_at, c)
    # The ball fills the view's height without spilling over: project it with the view as a camera.
    cam = Camera.from_fov(60.0, 64, 64, look_at(torch.tensor(v.position, dtype=torch.float32),
                                                torch.tensor(v.look_at, dtype=torch.float32)))
    uv, z = cam.project(scene.means[:4000])
    inside = (z > 0) & (uv >= 0).all(1) & (uv <= 64).all(1)
    assert float(inside.float().mean()) > 0.95
    span = (uv[:, 1].quantile(0.98) - uv[:, 1].quantile(0.02)) / 64
    assert 0.4 < float(span) <= 1.0


def test_a_ply_picks_up_cameras_frames_and_sky_beside_it(tmp_path, capsys):
    run = write_run(tmp_path / "run", block_scene(), [Camera.from_fov(60, 64, 48)])
    dome = SkyDome(texels_per_degree=1.0)
    dome.update(Camera.from_fov(60, 64, 48), torch.rand(48, 64, 3), torch.ones(48, 64, dtype=torch.bool))
    dome.save_png(run / "sky.png")
    w = load_world(run / "world.ply")
    assert len(w.cameras) == 1 and w.sky is not None and not w.notes
    torch.testing.assert_close(w.sky.weight, dome.weight)
    (run / "sky.png").write_text("not a png")
    w = load_world(run / "world.ply")  # a broken sky is a warning: the world still opens
    assert w.sky is None and "sky" in w.notes[0]


# ---------------------------------------------------------------------------------------- sky
def test_sky_png_round_trip_and_display_fill(tmp_path):
    dome = SkyDome(texels_per_degree=2.0)
    cam = Camera.from_fov(60, 80, 60, look_at(torch.zeros(3), torch.tensor([0.0, -1.0, 2.0])))  # looking up
    img = torch.zeros(60, 80, 3)
    img[..., 2] = torch.linspace(0.2, 1.0, 60)[:, None]  # bluer towards the bottom of the image
    assert dome.update(cam, img, torch.ones(60, 80, dtype=torch.bool)) > 0
    dome.save_png(tmp_path / "sky.png")
    rgba = np.asarray(Image.open(tmp_path / "sky.png"))
    assert rgba.shape == (dome.height, dome.width, 4)
    np.testing.assert_array_equal(rgba[..., 3] > 0, dome.weight.numpy() > 0)
    back = SkyDome.load_png(tmp_path / "sky.png")
    rgb0, known0 = dome.render(cam)
    rgb1, known1 = back.render(cam)
    assert float((rgb0 - rgb1).abs().max()) < 2 / 255 and torch.equal(known0, known1)

    shown = filled_for_display(back)
    assert bool((shown.weight == 1).all())
    seen = back.weight > 0
    torch.testing.assert_close(shown.color[:, seen], back.color[:, seen])  # observed texels unchanged
    rows = seen.any(1).nonzero()[:, 0]
    below = shown.color[:, rows.max() + 5:, :]  # never observed: the lowest observed row's mean
    torch.testing.assert_close(below, below[:, :1, :1].expand_as(below))
    # every unobserved texel: the mean of the observed texels of its own row, or of the nearest row with some
    row_mean = {int(r): back.color[:, r][:, seen[r]].mean(1) for r in rows}
    for y in range(back.height):
        nearest = int(rows[(rows - y).abs().argmin()])
        unseen = shown.color[:, y][:, ~seen[y]]
        torch.testing.assert_close(unseen, row_mean[nearest][:, None].expand_as(unseen), atol=1e-5, rtol=0)
    assert float(row_mean[int(rows.min())][2] - row_mean[int(rows.max())][2]) < -0.2  # (rows differ: bluer below)
    with pytest.raises(Exception, match="equirectangular"):
        Image.fromarray(np.zeros((10, 30, 3), np.uint8)).save(tmp_path / "bad.png")
        SkyDome.load_png(tmp_path / "bad.png")


def test_background_camera_follows_the_tab_rotation():
    up = SkyDome(texels_per_degree=1.0)
    tex = up._tex
    tex[0, 3] = 1.0
    tex[0, 0, : up.height // 2] = 1.0  # red above the horizon
    tex[0, 2, up.height // 2:] = 1.0  # blue below
    w = math.radians(60)  # pitch up 60 degrees: about the camera's x axis, +z tilts towards world -y (up)
    wxyz = np.array([math.cos(w / 2), math.sin(w / 2), 0.0, 0.0])
    cam = camera_for_view(wxyz, fov=math.radians(40), aspect=1.5, height=40)
    assert (cam.width, cam.height) == (60, 40)
    assert float(cam.c2w[1, 2]) < -0.8  # looking up
    img = sky_image(up, cam)
    assert img[..., 0].mean() > 200 and img[..., 2].mean() < 30  # all sky above the horizon
    level = camera_for_view(np.array([1.0, 0, 0, 0]), fov=math.radians(40), aspect=1.5, height=40)
    img = sky_image(up, level)
    assert img[:15, :, 0].mean() > 200 and img[-15:, :, 2].mean() > 200  # horizon across the middle


# ---------------------------------------------------------------------------------------- streaming
def test_world_streams_in_chunks_decimated_once_for_its_final_size(server, tmp_path):
    world = load_world(write_run(tmp_path / "run", block_scene(n=20, depth=25), [Camera.from_fov(60, 64, 48)]))
    calls = []
    add = server.scene.add_gaussian_splats

    def counting(name, **kw):
        calls.append(len(kw["centers"]))
        return add(name, **kw)

    server.scene.add_gaussian_splats = counting
    app = BrowseApp(server, world, budget=6000, chunk=2000)  # 10,000 Gaussians, 2,000 a chunk
    assert app.wait_streamed(30)
    n = len(world.scene)
    assert app.display.sent_upto == n and len(calls) == 5  # one message per chunk: no resend
    assert app.display.decimated and 6000 / math.sqrt(2) * 0.9 <= sum(calls) <= 6000
    assert "Streaming" not in app.info.content and "10,000" in app.info.content
    app.stop()


def test_frame_slider_and_playback_move_every_tab(server, tmp_path):
    cams = [Camera.from_fov(60, 64, 48, look_at(torch.tensor([0.0, 0.0, 0.1 * t]), torch.tensor([0.0, 0.0, 5.0])))
            for t in range(6)]
    app = BrowseApp(server, load_world(write_run(tmp_path / "run", block_scene(), cams)))
    visited = []
    go_to = app.go_to
    app.go_to = lambda t, clients=None: (visited.append(t), go_to(t, clients))
    app.slider.value = 2
    assert visited == [2]
    app.play(fps=100)
    t0 = time.monotonic()
    while app.playing and time.monotonic() - t0 < 10:
        time.sleep(0.02)
    assert not app.playing and visited == [2, 3, 4, 5] and app.slider.value == 5
    assert app.play_button.label == "Play path"
    app.play(fps=2)  # at the end: starts again from frame 0
    time.sleep(0.2)
    app.pause()
    assert not app.playing and visited[4] == 0 and app.slider.value <= 1
    app.stop()


# ---------------------------------------------------------------------------------------- browser
@pytest.mark.slow
def test_browser_opens_the_flight_at_its_first_camera(tmp_path, chromium):
    """`worldgen view RUN/world.ply` (cameras.json beside it): the new tab looks from camera 0, so the
    world covers most of the view (the old framing, behind and above it, left ~95 % background)."""
    run = tiny_flight(tmp_path / "run", frames=6, size="128x80")
    (run / "sky.png").unlink()  # sky would count as non-background too: measure the world alone
    server = start_server(HOST, 0)
    try:
        app = BrowseApp(server, load_world(run / "world.ply"))
        assert app.wait_streamed(30)
        # the Gaussians stream in after the tab opens: slower on a loaded machine (2026-12-03: 3 % covered after 6 s
        # while two evaluations held both cores of a 2-core machine), so wait longer before calling it a failure
        for settle in (6.0, 15.0, 30.0):
            img = snapshot(server, tmp_path / "first.png", size=(1024, 768), settle=settle, chromium=chromium)
            if 1.0 - background_fraction(img) > 0.6:
                break
    finally:
        server.stop()
    covered = 1.0 - background_fraction(img)
    H, W = img.shape[:2]
    assert covered > 0.6, f"the world covers only {covered:.0%} of the view"
    assert background_fraction(img[H // 2:, : W // 2]) < 0.05  # the ground below the horizon: all world


@pytest.mark.slow
def test_browser_shows_the_sky_dome_behind_the_world(tmp_path, chromium):
    run = write_run(tmp_path / "run", block_scene(), [Camera.from_fov(60, 64, 48)])
    sky = np.zeros((180, 360, 4), np.uint8)
    sky[..., :3], sky[..., 3] = MAGENTA, 255
    sky[120:, :, 3] = 0  # unobserved below 30 degrees under the horizon: filled from the rows above
    Image.fromarray(sky).save(run / "sky.png")
    server = start_server(HOST, 0)
    try:
        app = BrowseApp(server, load_world(run))
        for settle in (4.0, 12.0, 30.0):  # the dome's image follows the tab's first camera: slower on a loaded machine
            img = snapshot(server, tmp_path / "sky.png", size=(800, 600), settle=settle, chromium=chromium)
            if magenta(img)[:, :150].mean() > 0.6:
                break
        sent = app.sky.sent
    finally:
        server.stop()
    assert sent >= 1
    m = magenta(img)
    assert m[:, :150].mean() > 0.6 and m[-100:, 300:500].mean() > 0.5  # behind everything, everywhere
    r, g, b = (img[250:350, 350:450, i].astype(int) for i in range(3))
    assert ((r - g > 50) & (r - b > 50)).mean() > 0.5  # the red block is drawn over it


def test_snapshot_reports_missing_chromium(server, tmp_path):
    with pytest.raises(RuntimeError, match="chromium"):
        snapshot(server, tmp_path / "x.png", chromium=str(tmp_path / "no-chromium"), timeout=5)
    assert not (tmp_path / "x.png").exists()


def test_committed_screenshot_shows_the_world_from_the_first_camera():
    """docs/view_first_camera.jpg (scripts/export_docs.py: `worldgen view runs/x/world.ply`, a 100-frame
    flight with cameras.json and sky.png beside it) is mostly world and sky, not empty background."""
    img = np.asarray(Image.open(Path(__file__).resolve().parents[1] / "docs" / "view_first_camera.jpg").convert("RGB"))
    assert img.shape == (768, 1024, 3)
    assert background_fraction(img) < 0.2
    H, W = img.shape[:2]
    assert background_fraction(img[H // 2:]) < 0.02  # the ground ahead of the first camera fills the lower half
