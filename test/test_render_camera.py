"""Cameras: CameraInfo fields, optical-frame convention, projection of known points, stereo baseline."""

import numpy as np
import pytest
import torch

from rsatalker_ros.avatar.gaussians import WorldGaussians
from rsatalker_ros.render.api import render
from rsatalker_ros.render.camera import Camera, stereo_pair


def _dot(point, size=0.002):
    """One small, opaque white Gaussian at ``point``."""
    return WorldGaussians.from_colors(means=[point], scales=[[size] * 3], quats=[[1.0, 0, 0, 0]],
                                      opacities=[0.99], colors=[[1.0, 1.0, 1.0]])


def _centroid(alpha: torch.Tensor):
    a = alpha.double()
    v, u = torch.meshgrid(torch.arange(a.shape[0], dtype=torch.float64),
                          torch.arange(a.shape[1], dtype=torch.float64), indexing="ij")
    return float((a * u).sum() / a.sum()), float((a * v).sum() / a.sum())


def test_look_at_optical_frame_convention():
    cam = Camera.look_at(eye=[0, 0, 1.0], target=[0, 0, 0], up=[0, 1, 0], width=64, height=48, fov_y_deg=60)
    # z forward: the target is in front; x right: world +x appears right; y down: world +y (up) appears above
    (uv,), (z,) = cam.project([[0, 0, 0]])
    assert z == pytest.approx(1.0) and uv == pytest.approx([31.5, 23.5])
    (uv_r,), _ = cam.project([[0.1, 0, 0]])
    (uv_up,), _ = cam.project([[0, 0.1, 0]])
    assert uv_r[0] > 31.5 and uv_up[1] < 23.5
    assert cam.fy == pytest.approx(24 / np.tan(np.radians(30)))
    assert np.allclose(cam.position, [0, 0, 1.0])


def test_camera_info_dict_fields():
    cam = Camera(640, 480, 500.0, 501.0, 320.5, 240.5)
    info = cam.to_camera_info_dict(frame_id="head_cam")
    assert info["width"] == 640 and info["height"] == 480 and info["distortion_model"] == "plumb_bob"
    assert info["d"] == [0.0] * 5 and info["header"]["frame_id"] == "head_cam"
    assert info["k"] == [500.0, 0.0, 320.5, 0.0, 501.0, 240.5, 0.0, 0.0, 1.0]
    assert info["p"] == [500.0, 0.0, 320.5, 0.0, 0.0, 501.0, 240.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert info["r"] == [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_rendered_point_lands_where_camera_info_projects_it(backend):
    cam = Camera.look_at(eye=[0.3, 0.1, 0.8], target=[0.02, -0.01, 0.0], up=[0, 1, 0], width=80, height=60,
                         fov_y_deg=35)
    point = np.array([0.031, 0.018, -0.02])
    P = np.array(cam.to_camera_info_dict()["p"]).reshape(3, 4)
    x = P @ np.append(cam.world_to_cam[:3, :3] @ point + cam.world_to_cam[:3, 3], 1.0)
    u, v = x[0] / x[2], x[1] / x[2]
    res = render(_dot(point), cam, backend=backend)
    row, col = np.unravel_index(int(torch.argmax(res.alpha)), res.alpha.shape)
    assert (col, row) == (round(u), round(v))
    cu, cv = _centroid(res.alpha)
    assert cu == pytest.approx(u, abs=0.05) and cv == pytest.approx(v, abs=0.05)
    assert float(res.depth[row, col]) == pytest.approx(x[2], rel=1e-4)


def test_stereo_pair_baseline_and_disparity():
    center = Camera.look_at(eye=[0.0, 0.0, 0.6], target=[0, 0, 0], up=[0, 1, 0], width=96, height=64,
                            fov_y_deg=40)
    ipd = 0.064
    left, right = stereo_pair(center, ipd_m=ipd)
    assert np.linalg.norm(right.position - left.position) == pytest.approx(ipd)
    x_axis = center.world_to_cam[0, :3]  # the centre camera's x axis in world coordinates
    assert np.dot(right.position - left.position, x_axis) == pytest.approx(ipd)       # right eye is to the right
    assert np.allclose((left.position + right.position) / 2, center.position)
    assert left.tx == 0.0 and right.tx == pytest.approx(-center.fx * ipd)
    assert right.to_camera_info_dict()["p"][3] == pytest.approx(-center.fx * ipd)
    # the right P applied to a point in the LEFT camera frame gives the right image position (CameraInfo rule)
    point = np.array([0.01, -0.02, 0.05])
    p_left = left.world_to_cam[:3, :3] @ point + left.world_to_cam[:3, 3]
    x = right.P @ np.append(p_left, 1.0)
    (uv_r,), _ = right.project([point])
    assert x[:2] / x[2] == pytest.approx(uv_r, abs=1e-9)
    # rendered disparity = fx * baseline / depth
    ul, _ = _centroid(render(_dot(point), left, backend="cpu").alpha)
    ur, _ = _centroid(render(_dot(point), right, backend="cpu").alpha)
    assert ul - ur == pytest.approx(center.fx * ipd / p_left[2], abs=0.05)
    with pytest.raises(ValueError, match="ipd_m"):
        stereo_pair(center, ipd_m=0.0)


def test_bad_cameras_are_rejected():
    with pytest.raises(ValueError, match="world_to_cam"):
        Camera(10, 10, 5.0, 5.0, 5.0, 5.0, np.eye(3))
    with pytest.raises(ValueError, match="rotation"):
        Camera(10, 10, 5.0, 5.0, 5.0, 5.0, np.diag([1.0, 1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="fx and fy"):
        Camera(10, 10, 0.0, 5.0, 5.0, 5.0)
    with pytest.raises(ValueError, match="up is parallel"):
        Camera.look_at([0, 0, 1], [0, 0, 0], up=[0, 0, 1])
