import math

import numpy as np
import pytest
import torch

from worldgen.core.camera import Camera, look_at, quat_to_rotmat, quat_z_axes, rigid_inverse, rotmat_to_quat


def random_pose(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(4, generator=g)
    c2w = torch.eye(4)
    c2w[:3, :3] = quat_to_rotmat(q)
    c2w[:3, 3] = torch.randn(3, generator=g) * 5
    return c2w


def test_pixel_centres_are_at_half_pixels():
    cam = Camera.from_fov(90.0, 4, 2)
    uv = cam.pixel_grid()
    assert uv[0, 0].tolist() == [0.5, 0.5]
    assert uv[1, 3].tolist() == [3.5, 1.5]
    # Centred principal point: the ray through the image centre is the optical axis.
    assert cam.K[0, 2] == 2.0 and cam.K[1, 2] == 1.0
    assert math.isclose(cam.fx, 2.0, rel_tol=1e-6)  # 90 degrees over 4 pixels


def test_unproject_then_project_roundtrip():
    cam = Camera.from_fov(60.0, 32, 24, random_pose(1))
    depth = torch.rand(24, 32) * 10 + 0.5
    pts = cam.unproject(depth)
    uv, z = cam.project(pts.reshape(-1, 3))
    assert torch.allclose(z, depth.reshape(-1), rtol=1e-5)
    assert torch.allclose(uv, cam.pixel_grid().reshape(-1, 2), atol=1e-3)


def test_opencv_axes():
    cam = Camera.from_fov(60.0, 10, 10)
    # A point to the right (+x) and below (+y) projects right of and below the centre.
    uv, z = cam.project(torch.tensor([[1.0, 1.0, 5.0]]))
    assert uv[0, 0] > 5 and uv[0, 1] > 5 and z[0] == 5


def test_rigid_inverse_and_quaternions():
    T = random_pose(2)
    assert torch.allclose(rigid_inverse(T) @ T, torch.eye(4), atol=1e-5)
    q = rotmat_to_quat(T[:3, :3])
    assert torch.allclose(quat_to_rotmat(q), T[:3, :3], atol=1e-5)
    assert q[0] >= 0


def test_quat_z_axes_are_the_rotations_third_column():
    q = torch.randn(500, 4, generator=torch.Generator().manual_seed(3)) * 3  # not unit: scaled by |q|^2
    axes, q2 = quat_z_axes(q)
    assert torch.allclose(q2, (q * q).sum(-1), rtol=1e-5)
    assert torch.allclose(axes / q2[:, None], quat_to_rotmat(q)[:, :, 2], atol=1e-5)


def test_quat_z_axes_made_first_in_inference_mode_still_carry_gradients():
    import worldgen.core.camera as camera_module

    camera_module._NORMAL_FORMS.clear()  # (its form is made by the first call: here, inside a flight's mode)
    with torch.inference_mode():
        quat_z_axes(torch.randn(3, 4))
    q = torch.randn(3, 4, requires_grad=True)
    quat_z_axes(q)[0].sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_a_pose_from_the_host_brings_its_inverse_along():
    cam = Camera.from_fov(70.0, 64, 48)
    pose = random_pose(4)
    moved = cam.with_pose(pose.double())  # (the paths' poses may be float64)
    assert moved.c2w.dtype == torch.float32 and torch.equal(moved.c2w, pose)
    assert torch.allclose(moved.w2c, rigid_inverse(pose), atol=1e-6)
    np.testing.assert_allclose(moved.host_w2c(), np.linalg.inv(pose.double().numpy()), atol=1e-6)  # (R^T: float32 R is orthonormal to ~1e-7)
    assert torch.allclose(moved.w2c @ moved.c2w, torch.eye(4), atol=1e-6)


def test_look_at_is_level_and_faces_target():
    pos, tgt = torch.tensor([0.0, -2.0, 0.0]), torch.tensor([3.0, -1.0, 10.0])
    c2w = look_at(pos, tgt)
    fwd = (tgt - pos) / (tgt - pos).norm()
    assert torch.allclose(c2w[:3, 2], fwd, atol=1e-6)
    assert abs(float(c2w[1, 0])) < 1e-6  # camera x axis horizontal: no roll (world up is -y)
    assert float(c2w[1, 1]) > 0  # camera +y (down) points towards world +y (down)


def test_resized_keeps_field_of_view_and_dict_roundtrip():
    cam = Camera.from_fov(70.0, 64, 48, random_pose(3))
    small = cam.resized(32, 24)
    assert math.isclose(small.fov_x_deg, 70.0, rel_tol=1e-5)
    back = Camera.from_dict(cam.to_dict())
    assert torch.allclose(back.K, cam.K) and torch.allclose(back.c2w, cam.c2w) and back.width == 64


def test_a_camera_on_the_device_is_read_back_at_most_once():
    """`Camera.host()` keeps K and c2w on the host: a pose given on the host (the paths compute there) goes to
    the device with `with_pose` and is never read back, however often the page test, the autopilot's
    coarse view or cameras.jsonl ask for it. The "device" here is PyTorch's meta device, whose values
    cannot be read at all: any read back would raise."""
    from worldgen.pipeline.world import boxes_in_view

    cam = Camera.from_fov(60.0, 32, 24, look_at(torch.tensor([0.0, -1.0, 0.0]), torch.tensor([0.3, -0.8, 5.0])))
    dev = cam.to("meta")
    pose = look_at(torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.0, -1.0, 6.0]))
    moved = dev.with_pose(pose)
    assert moved.c2w.device.type == "meta" and moved.fx == cam.fx and moved.fy == cam.fy
    K, c2w = moved.host()
    assert np.array_equal(c2w, pose.numpy().astype(np.float64)) and np.array_equal(K, cam.K.numpy())
    back = moved.to("cpu")  # made from the host copy
    assert torch.equal(back.c2w, pose) and torch.equal(back.K, cam.K)
    assert moved.to_dict() == cam.with_pose(pose).to_dict()
    lo = np.array([[-1.0, -3.0, 2.0], [20.0, -3.0, 2.0], [-1.0, -3.0, -9.0]])
    assert boxes_in_view(lo, lo + 1.0, moved).tolist() == boxes_in_view(lo, lo + 1.0, cam.with_pose(pose)).tolist() == [True, False, False]
    # without a host copy the values are needed, and the meta device has none
    with pytest.raises(NotImplementedError, match="meta"):
        Camera(K=dev.K, c2w=pose.to("meta"), width=32, height=24).host()


def test_a_graphs_static_camera_reads_nothing_from_the_device():
    """The Camera a CUDA graph is built over (`static_camera`) knows fx and fy without reading the device:
    read inside the capture's warm-up they would synchronise, and the graph would run eagerly ever after.
    (The meta device has no values to read: any read raises.)"""
    from worldgen.core.graphs import camera_inputs, static_camera

    cam = Camera.from_fov(70.0, 32, 24).to("meta").with_pose(torch.eye(4))
    inputs, key = camera_inputs(cam)
    static = [torch.empty_like(t) for t in inputs] + [torch.empty(24, 32, device="meta")]
    graph_cam, rest = static_camera(cam, static)
    assert graph_cam.fx == cam.fx == key[2] and graph_cam.fy == cam.fy and len(rest) == 1
    assert graph_cam.c2w is static[len(inputs) - 1]  # the pose comes from the static tensors
