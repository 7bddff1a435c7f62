"""Renderer backends: CPU tiles vs the torch reference, occlusion, image layout, gradients, gsplat (CUDA only)."""

import numpy as np
import pytest
import torch

from rsatalker_ros.avatar.gaussians import FastBinder, GaussianAvatar, WorldGaussians, bind
from rsatalker_ros.avatar.meshes import icosphere
from rsatalker_ros.render.api import choose_backend, render, render_uint8
from rsatalker_ros.render.camera import Camera


def random_scene(seed: int, n: int = 300, sh_degree: int = 0) -> WorldGaussians:
    rng = np.random.default_rng(seed)
    K = (sh_degree + 1) ** 2
    sh = rng.normal(scale=0.4, size=(n, K, 3))
    sh[:, 0] = (rng.uniform(0, 1, (n, 3)) - 0.5) / 0.28209479
    f = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    return WorldGaussians(
        means=f(rng.uniform([-0.25, -0.2, -0.2], [0.25, 0.2, 0.2], (n, 3))),
        scales=f(np.exp(rng.uniform(np.log(0.004), np.log(0.06), (n, 3)))),
        quats=f(rng.normal(size=(n, 4))),
        opacities=f(rng.uniform(0.02, 1.0, n)),
        sh=f(sh))


CAM = Camera.look_at(eye=[0.15, 0.1, 0.9], target=[0, 0, 0], up=[0, 1, 0], width=72, height=56, fov_y_deg=40)


@pytest.mark.parametrize("seed, sh_degree, bg", [(0, 0, (0, 0, 0)), (1, 1, (1, 1, 1)), (2, 3, (0.2, 0.5, 0.9))])
def test_cpu_matches_torch_reference(seed, sh_degree, bg):
    g = random_scene(seed, sh_degree=sh_degree)
    ref = render(g, CAM, background=bg, backend="torch")
    cpu = render(g, CAM, background=bg, backend="cpu")
    assert float(ref.alpha.max()) > 0.9 and float(ref.alpha.min()) < 0.1  # a real scene, with background showing
    assert float((cpu.image - ref.image).abs().mean()) < 1 / 255
    assert float((cpu.alpha - ref.alpha).abs().mean()) < 1 / 255
    covered = ref.alpha > 0.5
    assert float((cpu.depth - ref.depth)[covered].abs().mean()) < 1e-3


def test_avatar_on_mesh_cpu_matches_reference():
    v, f = icosphere(2, 0.12)
    rng = np.random.default_rng(5)
    av = GaussianAvatar.init_from_mesh(v, f, per_triangle=3, colors=rng.uniform(size=(len(f), 3)))
    g = FastBinder(av)(v)
    cam = Camera.look_at([0.1, 0.05, 0.6], [0, 0, 0], [0, 1, 0], 64, 64, 35)
    ref = render(bind(av, torch.as_tensor(v)), cam, backend="torch")
    cpu = render(g, cam, backend="cpu")
    assert float((cpu.image - ref.image).abs().mean()) < 1 / 255
    assert float(ref.alpha[32, 32]) > 0.99  # the sphere is closed and opaque in the middle


def test_gaussian_behind_another_is_hidden():
    cam = Camera.look_at([0, 0, 2.0], [0, 0, 0], [0, 1, 0], 32, 32, 30)

    def scene(red_z, blue_z):  # blue listed first, so the order of the input is not the depth order
        return WorldGaussians.from_colors(means=[[0, 0, blue_z], [0, 0, red_z]], scales=[[0.2, 0.2, 0.05]] * 2,
                                          quats=[[1.0, 0, 0, 0]] * 2, opacities=[0.99, 0.99],
                                          colors=[[0, 0, 1.0], [1.0, 0, 0]])
    for backend in ("cpu", "torch"):
        res = render(scene(0.5, -0.5), cam, backend=backend)  # red nearer the camera (at z = 2)
        centre = res.image[16, 16]
        assert centre[0] > 0.95 and centre[2] < 0.02, backend
        assert float(res.depth[16, 16]) == pytest.approx(1.5, abs=0.02)
        centre = render(scene(-0.5, 0.5), cam, backend=backend).image[16, 16]
        assert centre[2] > 0.95 and centre[0] < 0.02, backend


def test_image_size_dtype_and_channel_order():
    cam = Camera.look_at([0, 0, 1.0], [0, 0, 0], [0, 1, 0], width=40, height=24, fov_y_deg=30)
    g = WorldGaussians.from_colors(means=[[0, 0, 0]], scales=[[0.05] * 3], quats=[[1.0, 0, 0, 0]], opacities=[0.9],
                                   colors=[[1.0, 0, 0]])
    res = render(g, cam, backend="cpu")
    assert res.image.shape == (24, 40, 3) and res.image.dtype == torch.float32
    assert res.alpha.shape == (24, 40) and res.depth.shape == (24, 40)
    assert float(res.image[12, 20, 0]) > 0.85 and float(res.image[12, 20, 1:].abs().max()) < 1e-6
    rgb8 = render_uint8(g, cam)
    assert rgb8.shape == (24, 40, 3) and rgb8.dtype == np.uint8
    assert rgb8[12, 20, 0] > 215 and rgb8[12, 20, 1] == 0 and rgb8[12, 20, 2] == 0


def test_uint8_fast_path_equals_rounded_float_image():
    g = random_scene(7)
    img = render(g, CAM, background=(0.1, 0.2, 0.3), backend="cpu").image.numpy()
    rgb8 = render_uint8(g, CAM, background=(0.1, 0.2, 0.3))
    expect = np.floor(np.clip(img, 0, 1) * 255 + 0.5).astype(np.int32)
    assert np.abs(rgb8.astype(np.int32) - expect).max() <= 1
    ref8 = render_uint8(g, CAM, background=(0.1, 0.2, 0.3), backend="torch")
    assert np.abs(rgb8.astype(np.float64) - ref8).mean() < 1.0


def test_torch_backend_gradients_match_finite_differences():
    g = random_scene(3, n=40)
    g = WorldGaussians(*(t.double().requires_grad_(True) for t in (g.means, g.scales, g.quats, g.opacities, g.sh)))
    cam = CAM.with_size(24, 20)
    assert choose_backend(g) == "torch"
    target = torch.rand(20, 24, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def loss_of(means):
        gg = WorldGaussians(means, g.scales, g.quats, g.opacities, g.sh)
        return ((render(gg, cam).image - target) ** 2).sum()

    loss = loss_of(g.means)
    loss.backward()
    for t in (g.means, g.scales, g.quats, g.opacities, g.sh):
        assert t.grad is not None and torch.isfinite(t.grad).all()
    i = int(torch.argmax(g.means.grad.abs().sum(-1)))
    eps = 1e-6
    with torch.no_grad():
        d = torch.zeros_like(g.means)
        d[i, 0] = eps
        fd = (loss_of(g.means + d) - loss_of(g.means - d)) / (2 * eps)
    assert float(g.means.grad[i, 0]) == pytest.approx(float(fd), rel=1e-3, abs=1e-6)


def test_auto_backend_and_bad_inputs():
    g = random_scene(0, n=10)
    assert choose_backend(g) == "cpu"
    with pytest.raises(ValueError, match="unknown backend"):
        render(g, CAM, backend="opengl")
    with pytest.raises(ValueError, match="background"):
        render(g, CAM, background=(1, 0))
    bad = WorldGaussians(g.means, g.scales[:5], g.quats, g.opacities, g.sh)
    with pytest.raises(ValueError, match="scales has shape"):
        render(bad, CAM)
    batched = WorldGaussians(g.means[None], g.scales[None], g.quats[None], g.opacities[None], g.sh[None])
    with pytest.raises(ValueError, match="index a batch"):
        render(batched, CAM)
    assert render(batched[0], CAM).image.shape == (CAM.height, CAM.width, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="gsplat needs a CUDA GPU")
def test_gsplat_matches_cpu():
    pytest.importorskip("gsplat")
    g = random_scene(4, sh_degree=3)
    gc = WorldGaussians(*(t.cuda() for t in (g.means, g.scales, g.quats, g.opacities, g.sh)))
    assert choose_backend(gc) == "gsplat"
    gpu = render(gc, CAM, background=(0.3, 0.3, 0.3), backend="gsplat")
    cpu = render(g, CAM, background=(0.3, 0.3, 0.3), backend="cpu")
    assert float((gpu.image.cpu() - cpu.image).abs().mean()) < 1 / 255
    assert float((gpu.alpha.cpu() - cpu.alpha).abs().mean()) < 1 / 255
