"""The gsplat backend's argument conventions, checked without CUDA against a stand-in ``gsplat.rasterization``
that follows gsplat's documented semantics (pixel centres at +0.5, world-to-camera viewmats, SH colours + 0.5
clamped at 0, "RGB+ED" = rgb + expected depth, backgrounds [C, 3]). The real comparison runs in
test_render_backends.py::test_gsplat_matches_cpu and scripts/gpu_check.py on a CUDA machine."""

import sys
import types

import numpy as np
import pytest
import torch

from rsatalker_ros.render import gsplat_backend
from rsatalker_ros.render.api import render
from rsatalker_ros.render.camera import Camera
from rsatalker_ros.render.reference_torch import render_torch
from rsatalker_ros.render.sh import sh_to_rgb

from test_render_backends import random_scene  # noqa: E402


def fake_rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height, near_plane=0.01,
                       far_plane=1e10, eps2d=0.3, sh_degree=None, packed=True, backgrounds=None, render_mode="RGB",
                       rasterize_mode="classic", **kw):
    assert means.dim() == 2 and viewmats.shape == (1, 4, 4) and Ks.shape == (1, 3, 3)
    assert render_mode == "RGB+ED" and rasterize_mode == "classic" and eps2d == 0.3 and near_plane == 0.01
    assert sh_degree is not None and colors.shape == (means.shape[0], (sh_degree + 1) ** 2, 3)
    assert backgrounds.shape == (1, 3)
    K = Ks[0].double().numpy()
    # gsplat evaluates pixel (j, i) at (j + 0.5, i + 0.5): the same as our convention with cx - 0.5
    cam = Camera(width, height, K[0, 0], K[1, 1], K[0, 2] - 0.5, K[1, 2] - 0.5, viewmats[0].double().numpy())
    rgb = sh_to_rgb(colors, means, torch.linalg.inv(viewmats[0])[:3, 3])
    img, alpha, depth = render_torch(means, quats, scales, opacities, rgb, cam, backgrounds[0])
    return torch.cat([img, depth[..., None]], -1)[None], alpha[None, ..., None], {}


@pytest.fixture()
def fake_gsplat(monkeypatch):
    monkeypatch.setitem(sys.modules, "gsplat", types.SimpleNamespace(rasterization=fake_rasterization))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_gsplat_adapter_matches_cpu(fake_gsplat):
    g = random_scene(6, n=200, sh_degree=2)
    cam = Camera.look_at([0.1, -0.05, 0.8], [0, 0, 0], [0, 1, 0], 48, 40, 40)
    img, alpha, depth = gsplat_backend.render_gsplat(g.means, g.quats, g.scales, g.opacities, g.sh, cam,
                                                     np.array([0.2, 0.3, 0.4]), device="cpu")
    cpu = render(g, cam, background=(0.2, 0.3, 0.4), backend="cpu")
    assert img.shape == (40, 48, 3) and alpha.shape == (40, 48) and depth.shape == (40, 48)
    assert float((img - cpu.image).abs().mean()) < 1 / 255
    assert float((alpha - cpu.alpha).abs().mean()) < 1 / 255
    covered = cpu.alpha > 0.5
    assert float((depth - cpu.depth)[covered].abs().mean()) < 1e-3


def test_gsplat_backend_without_cuda_says_so(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not gsplat_backend.gsplat_available()
    g = random_scene(0, n=5)
    with pytest.raises(RuntimeError, match="gsplat"):
        render(g, Camera.look_at([0, 0, 1], [0, 0, 0], [0, 1, 0], 8, 8, 30), backend="gsplat")
