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
    """gsplat 1.5.3's ``rasterization`` contract: leading batch dimensions shared by every argument (means
    [..., N, 3], viewmats [..., C, 4, 4], Ks [..., C, 3, 3], colors [..., N, K, 3] with (sh_degree + 1)^2 <= K,
    backgrounds [..., C, 3]) -> colours [..., C, H, W, 3 (+1 for "RGB+ED")], alphas [..., C, H, W, 1]."""
    batch = means.shape[:-2]
    N, C = means.shape[-2], viewmats.shape[-3]
    assert quats.shape == batch + (N, 4) and scales.shape == batch + (N, 3) and opacities.shape == batch + (N,)
    assert viewmats.shape == batch + (C, 4, 4) and Ks.shape == batch + (C, 3, 3)
    assert sh_degree is not None and colors.shape[:-2] == batch + (N,) and colors.shape[-1] == 3
    assert (sh_degree + 1) ** 2 <= colors.shape[-2]
    assert backgrounds.shape == batch + (C, 3)
    assert render_mode in ("RGB", "RGB+ED") and rasterize_mode == "classic" and eps2d == 0.3 and near_plane == 0.01
    B = int(np.prod(batch)) if batch else 1
    flat = [t.reshape((B,) + t.shape[len(batch):]) for t in (means, quats, scales, opacities, colors, viewmats,
                                                               Ks, backgrounds)]
    out_c, out_a = [], []
    for b in range(B):
        m, q, s, o, sh, V, K, bg = (t[b] for t in flat)
        sh = sh[:, :(sh_degree + 1) ** 2]  # only the active bands
        for c in range(C):
            Kc = K[c].double().numpy()
            # gsplat evaluates pixel (j, i) at (j + 0.5, i + 0.5): the same as our convention with cx - 0.5
            cam = Camera(width, height, Kc[0, 0], Kc[1, 1], Kc[0, 2] - 0.5, Kc[1, 2] - 0.5, V[c].double().numpy())
            rgb = sh_to_rgb(sh, m, torch.linalg.inv(V[c].double())[:3, 3].float())
            img, alpha, depth = render_torch(m, q, s, o, rgb, cam, bg[c])
            out_c.append(torch.cat([img, depth[..., None]], -1) if render_mode == "RGB+ED" else img)
            out_a.append(alpha[..., None])
    shape = batch + (C, height, width)
    return (torch.stack(out_c).reshape(shape + (out_c[0].shape[-1],)), torch.stack(out_a).reshape(shape + (1,)),
            {})


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
