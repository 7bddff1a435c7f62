"""Many avatars per call (render/batch.py): one batched gsplat call (checked without CUDA against the stand-in
that follows gsplat 1.5.3's batching rules) gives each scene the image the CPU renderer gives it alone; the CPU
fallback renders one by one; per-camera tensors are built once."""

import sys
import types

import numpy as np
import pytest
import torch

from rsatalker_ros.render.api import render, render_uint8
from rsatalker_ros.render.batch import camera_batch, host_buffer, render_batch, render_batch_uint8
from rsatalker_ros.render.camera import Camera
from rsatalker_ros.render.gsplat_backend import camera_tensors

from test_render_backends import random_scene  # noqa: E402
from test_render_gsplat_adapter import fake_rasterization  # noqa: E402

BG = np.array([[0.2, 0.3, 0.4], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]], np.float32)


def _cameras(w=40, h=32):
    return [Camera.look_at([0.1, -0.05, 0.8], [0, 0, 0], [0, 1, 0], w, h, 40),
            Camera.look_at([-0.3, 0.1, 0.7], [0, 0, 0], [0, 1, 0], w, h, 45),
            Camera.look_at([0.0, 0.3, 0.75], [0, 0.02, 0], [0, 1, 0], w, h, 35)]


@pytest.fixture()
def gsplat_calls(monkeypatch):
    calls = []

    def counted(*args, **kw):
        calls.append(args[0].shape)
        return fake_rasterization(*args, **kw)
    monkeypatch.setitem(sys.modules, "gsplat", types.SimpleNamespace(rasterization=counted))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    return calls


def _scenes():
    """Scene 0: 150 Gaussians, SH degree 0; scenes 1 and 2: one avatar's batch of two, 200 Gaussians, degree 2."""
    a = random_scene(11, n=150, sh_degree=0)
    b1, b2 = random_scene(12, n=200, sh_degree=2), random_scene(13, n=200, sh_degree=2)
    b = type(a)(*(torch.stack([x, y]) for x, y in zip((b1.means, b1.scales, b1.quats, b1.opacities, b1.sh),
                                                       (b2.means, b2.scales, b2.quats, b2.opacities, b2.sh))))
    return [a, b], [a, b1, b2]


def test_one_batched_gsplat_call_draws_every_scene_as_the_cpu_renderer_does(gsplat_calls):
    items, singles = _scenes()
    cams = camera_batch(_cameras(), BG, device="cpu")
    out = render_batch(items, cams, backend="gsplat")
    assert len(gsplat_calls) == 1 and gsplat_calls[0] == (3, 200, 3)  # one call, padded to the largest scene
    assert out.images.shape == (3, 32, 40, 3) and out.alphas.shape == (3, 32, 40) and out.depths.shape == (3, 32, 40)
    for i, (g, cam) in enumerate(zip(singles, cams.cameras)):
        ref = render(g, cam, background=BG[i], backend="cpu")
        assert float((out.images[i] - ref.image).abs().mean()) < 1 / 255, i
        assert float((out.alphas[i] - ref.alpha).abs().mean()) < 1 / 255, i
        covered = ref.alpha > 0.5
        assert float((out.depths[i] - ref.depth)[covered].abs().mean()) < 1e-3, i
        assert ref.alpha.max() > 0.5  # the scene is in view: the comparison means something
    rgb8 = render_batch_uint8(items, cams, backend="gsplat", out=host_buffer(cams))
    assert len(gsplat_calls) == 2 and rgb8.dtype == np.uint8 and rgb8.shape == (3, 32, 40, 3)
    for i, (g, cam) in enumerate(zip(singles, cams.cameras)):
        ref8 = render_uint8(g, cam, background=BG[i])
        assert np.abs(rgb8[i].astype(int) - ref8).mean() < 1.0, i


def test_cpu_fallback_renders_one_by_one_with_each_camera_and_background():
    items, singles = _scenes()
    cams = camera_batch(_cameras(), BG)
    out = render_batch_uint8(items, cams)  # auto: CPU tensors -> the CPU rasteriser
    for i, (g, cam) in enumerate(zip(singles, cams.cameras)):
        assert np.array_equal(out[i], render_uint8(g, cam, background=BG[i])), i
    assert not np.array_equal(out[0], out[1])
    res = render_batch(items, cams, backend="cpu", with_depth=False)
    assert res.images.shape == (3, 32, 40, 3) and res.depths is None


def test_batch_inputs_are_checked():
    items, _ = _scenes()
    with pytest.raises(ValueError, match="3 scenes but there are 2 cameras"):
        render_batch(items, camera_batch(_cameras()[:2]))
    with pytest.raises(ValueError, match="one image size"):
        camera_batch([_cameras()[0], _cameras(48, 32)[1]])
    with pytest.raises(ValueError, match="backgrounds has shape"):
        camera_batch(_cameras(), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="CameraBatch"):
        render_batch(items, _cameras())
    with pytest.raises(ValueError, match="expected WorldGaussians"):
        render_batch([items[0], "x"], camera_batch(_cameras()[:2]))


def test_per_camera_tensors_are_built_once_and_follow_the_camera():
    cam = _cameras()[0]
    v1, K1 = camera_tensors(cam, "cpu")
    v2, K2 = camera_tensors(Camera.look_at([0.1, -0.05, 0.8], [0, 0, 0], [0, 1, 0], 40, 32, 40), "cpu")
    assert v1 is v2 and K1 is K2  # an equal camera is served from the cache
    assert torch.allclose(v1.double(), torch.from_numpy(cam.world_to_cam))
    assert float(K1[0, 2]) == pytest.approx(cam.cx + 0.5) and float(K1[1, 1]) == pytest.approx(cam.fy)
    moved = _cameras()[1]
    assert not torch.equal(camera_tensors(moved, "cpu")[0], v1)
