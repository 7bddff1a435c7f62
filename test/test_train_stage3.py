"""Stage-3 training: the fast rasteriser's gradients, PSNR going up on a tiny scene, configs and view files."""

from pathlib import Path

import numpy as np
import pytest
import torch

from rsatalker_ros.avatar.gaussians import GaussianAvatar, bind
from rsatalker_ros.avatar.meshes import icosphere
from rsatalker_ros.motion.layout import ARKIT_LAYOUT
from rsatalker_ros.render.api import render
from rsatalker_ros.render.camera import Camera
from rsatalker_ros.render.mesh_raster import render_mesh
from rsatalker_ros.train.raster_grad import render_train
from rsatalker_ros.train.ssim import psnr, ssim
from rsatalker_ros.train.stage3 import (Stage3Config, ViewSet, evaluate, orbit_camera, train_stage3)

NAMES = ("means", "log_scales", "quats", "opacity_logits", "sh")


class SphereHead:
    """A tiny stand-in head: an icosphere whose jaw value (motion[52]) stretches it vertically."""

    name = "sphere"
    layout = ARKIT_LAYOUT

    def __init__(self):
        v, f = icosphere(2, radius=0.1)
        self.v = torch.from_numpy(v)
        self.faces = torch.from_numpy(f)

    def to(self, device):
        return self

    def neutral(self):
        return self.v.clone()

    def from_motion(self, motion):
        s = 1.0 + motion[:, ARKIT_LAYOUT.jaw.start]
        return self.v[None] * torch.stack([torch.ones_like(s), s, torch.ones_like(s)], 1)[:, None, :]


def _sphere_views(head, n, size, seed):
    rng = np.random.default_rng(seed)
    v = head.v.numpy()
    colors = 0.5 + 0.4 * np.stack([np.sin(9 * v[:, 0] * 10), np.cos(7 * v[:, 1] * 10), np.sin(5 * v[:, 2] * 10)], 1)
    motions = np.zeros((n, 64), np.float32)
    motions[:, ARKIT_LAYOUT.jaw.start] = rng.uniform(0, 0.3, n)
    images, w2c, K = [], [], []
    for i in range(n):
        cam = orbit_camera((0, 0, 0), rng.uniform(-60, 60), rng.uniform(-20, 20), 0.45, size, 35)
        verts = head.from_motion(torch.from_numpy(motions[i:i + 1]))[0].numpy()
        img = render_mesh(verts, head.faces.numpy(), cam, vertex_colors=colors, supersample=2).image
        images.append((img * 255 + 0.5).astype(np.uint8))
        w2c.append(cam.world_to_cam)
        K.append(cam.K)
    return ViewSet(np.stack(images), motions, np.stack(w2c), np.stack(K))


def _scene(opacity, seed=0, per_triangle=2):
    v, f = icosphere(2, radius=0.1)
    av = GaussianAvatar.init_from_mesh(v, f, per_triangle=per_triangle, opacity=opacity)
    g = torch.Generator().manual_seed(seed)
    av.sh = av.sh + 0.5 * torch.randn(av.sh.shape, generator=g)
    av.log_scales = av.log_scales + 0.3
    for n in NAMES:
        setattr(av, n, getattr(av, n).clone().requires_grad_(True))
    return av, torch.from_numpy(v)


@pytest.mark.parametrize("opacity", [0.6, 0.999])  # 0.999: alpha clamping and early termination are exercised
def test_fast_rasteriser_matches_torch_reference_image_and_gradients(opacity):
    av, v = _scene(opacity)
    cam = Camera.look_at([0.05, 0.1, 0.5], [0, 0, 0], (0, 1, 0), 40, 36, 30)
    bg = torch.tensor([0.2, 0.5, 0.9])
    g = torch.Generator().manual_seed(1)
    tgt, tgt_a = torch.rand(36, 40, 3, generator=g), torch.rand(36, 40, generator=g)
    results = []
    for backend in ("torch", "fast"):
        for n in NAMES:
            getattr(av, n).grad = None
        wg = bind(av, v)
        out = render(wg, cam, bg, backend="torch") if backend == "torch" else render_train(wg, cam, bg)[0]
        (((out.image - tgt) ** 2).sum() + (out.alpha * tgt_a).sum()).backward()
        results.append((out.image.detach(), out.alpha.detach(), [getattr(av, n).grad.clone() for n in NAMES]))
    (ref_img, ref_a, ref_g), (img, a, grads) = results
    assert torch.allclose(img, ref_img, atol=1e-5) and torch.allclose(a, ref_a, atol=1e-5)
    for name, gr, gf in zip(NAMES, ref_g, grads):
        assert gr.abs().max() > 0, name
        assert torch.allclose(gf, gr, rtol=1e-3, atol=1e-5 * gr.abs().max()), name


def test_stage3_training_raises_psnr_on_a_tiny_scene():
    torch.manual_seed(0)
    head = SphereHead()
    train = _sphere_views(head, 8, 48, seed=0)
    held = _sphere_views(head, 3, 48, seed=1)
    cfg = Stage3Config(iterations=120, init_per_triangle=2, min_gaussians=0, densify_from=40, densify_until=100,
                       densify_every=40, lr_sh=0.03, init_colors_from_views=False, seed=0)
    init = GaussianAvatar.init_from_mesh(head.v.numpy(), head.faces.numpy(), per_triangle=2, head="sphere")
    before, _ = evaluate(init, head, held)
    result = train_stage3(head, train, cfg, show_progress=False)
    after, renders = evaluate(result.avatar, head, held)
    assert after["psnr"] > before["psnr"] + 6.0, (before, after)
    assert after["psnr"] > 18.0 and after["ssim"] > before["ssim"] + 0.1
    assert renders.shape == (3, 48, 48, 3)
    # every triangle keeps its Gaussians and densification grew the set
    assert torch.bincount(result.avatar.parent, minlength=head.faces.shape[0]).min() >= 1
    assert len(result.avatar) > 2 * head.faces.shape[0]


def test_finetune_motion_updates_frames_and_min_gaussians_fill():
    head = SphereHead()
    train = _sphere_views(head, 3, 32, seed=2)
    cfg = Stage3Config(iterations=6, finetune_motion=True, lr_motion=1e-2, densify_from=100,
                       min_gaussians=3 * head.faces.shape[0], init_per_triangle=1)
    result = train_stage3(head, train, cfg, show_progress=False)
    assert result.motions.shape == (3, 64)
    assert not torch.allclose(result.motions, torch.from_numpy(train.motions))
    assert len(result.avatar) == 3 * head.faces.shape[0]


def test_focus_trains_gaussians_added_on_grown_triangles_and_freezes_the_rest():
    """What rsatalker-avatar-add-teeth does: an avatar of the first triangles, extended with one Gaussian per new
    triangle, fine-tuned with the old Gaussians frozen (lr_scale_unfocused 0)."""
    from rsatalker_ros.avatar.gaussians import extend_to_faces
    head = SphereHead()
    train = _sphere_views(head, 3, 32, seed=3)
    n_old = 200
    old = GaussianAvatar.init_from_mesh(head.v.numpy(), head.faces[:n_old].numpy(), head="sphere")
    grown = extend_to_faces(old, head.v.numpy(), head.faces.numpy())
    assert len(grown) == head.faces.shape[0] and torch.equal(grown.parent[n_old:], torch.arange(n_old, 320))
    assert torch.equal(grown.means[:n_old], old.means) and torch.equal(grown.faces, head.faces)
    focus = torch.arange(head.faces.shape[0]) >= n_old
    start = {n: getattr(grown, n).clone() for n in NAMES}
    cfg = Stage3Config(iterations=4, densify_from=100, min_gaussians=0, lr_scale_unfocused=0.0)
    out = train_stage3(head, train, cfg, avatar=grown, show_progress=False, focus=focus).avatar
    for n in NAMES:
        assert torch.equal(getattr(out, n)[:n_old], getattr(old, n)), n
        assert not torch.equal(getattr(out, n)[n_old:], start[n][n_old:]), n
    with pytest.raises(ValueError, match="without densification"):
        train_stage3(head, train, Stage3Config(iterations=4, densify_from=2, lr_scale_unfocused=0.0), avatar=grown,
                     show_progress=False, focus=focus)


def test_stage3_draws_densify_and_fill_randomness_on_the_parameters_device(monkeypatch):
    """Every densify and final-fill call gets a generator on the same device as the parameters it splits, and
    that device is the configured one. On a CPU-only machine both are the CPU, so this pins the contract (and that
    both paths run); the CUDA case itself runs in scripts/gpu_check.py (stage 3 at 512 px with densification)."""
    import rsatalker_ros.train.stage3 as stage3
    calls = []

    def spy(real, name):
        def wrapped(params, parent, n_faces, *args):
            gen = args[-1]
            calls.append((name, gen.device, params["means"].device, parent.device))
            return real(params, parent, n_faces, *args)
        return wrapped

    monkeypatch.setattr(stage3, "densify", spy(stage3.densify, "densify"))
    monkeypatch.setattr(stage3, "fill_to_count", spy(stage3.fill_to_count, "fill"))
    head = SphereHead()
    train = _sphere_views(head, 3, 24, seed=4)
    cfg = Stage3Config(iterations=4, densify_from=2, densify_until=4, densify_every=2, init_per_triangle=1,
                       min_gaussians=6 * head.faces.shape[0], init_colors_from_views=False)
    result = stage3.train_stage3(head, train, cfg, show_progress=False)
    assert [c[0] for c in calls] == ["densify", "densify", "fill"]
    want = torch.device(cfg.device)
    assert all(g == p == q == want for _, g, p, q in calls), calls
    assert len(result.avatar) == 6 * head.faces.shape[0] and result.avatar.means.device == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="stage 3 on CUDA needs a CUDA GPU")
def test_stage3_densifies_and_fills_on_cuda():
    """Issue #13's crash (a CPU generator for CUDA parameters) stays fixed: gsplat training with densification
    and the final fill on the GPU."""
    pytest.importorskip("gsplat")
    head = SphereHead()
    train = _sphere_views(head, 4, 32, seed=5)
    cfg = Stage3Config(iterations=8, renderer="gsplat", device="cuda", densify_from=4, densify_until=8,
                       densify_every=4, init_per_triangle=1, min_gaussians=6 * head.faces.shape[0],
                       init_colors_from_views=False)
    result = train_stage3(head, train, cfg, show_progress=False)
    assert len(result.avatar) == 6 * head.faces.shape[0] and result.avatar.means.device.type == "cpu"


def test_viewset_roundtrip_and_validation(tmp_path):
    head = SphereHead()
    vs = _sphere_views(head, 2, 16, seed=3)
    vs.save(tmp_path / "v.npz")
    back = ViewSet.load(tmp_path / "v.npz")
    assert np.array_equal(back.images, vs.images) and np.allclose(back.K, vs.K)
    cam = back.camera(1)
    assert (cam.width, cam.height) == (16, 16) and np.allclose(cam.world_to_cam, vs.world_to_cam[1])
    with pytest.raises(ValueError, match="images"):
        ViewSet(vs.images.astype(np.float32), vs.motions, vs.world_to_cam, vs.K)
    with pytest.raises(ValueError, match="world_to_cam"):
        ViewSet(vs.images, vs.motions, vs.world_to_cam[:1], vs.K)
    with pytest.raises(ValueError, match="does not exist"):
        ViewSet.load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="64"):
        bad = ViewSet(vs.images, np.zeros((2, 10), np.float32), vs.world_to_cam, vs.K)
        train_stage3(head, bad, Stage3Config(iterations=1), show_progress=False)


def test_config_from_dict_rejects_unknown_keys():
    cfg = Stage3Config.from_dict({"iterations": 5, "densify": {"max_gaussians": 10}, "background": [0, 0, 0]})
    assert cfg.iterations == 5 and cfg.densify.max_gaussians == 10 and cfg.background == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="itertions"):
        Stage3Config.from_dict({"itertions": 5})
    with pytest.raises(ValueError, match="renderer"):
        Stage3Config.from_dict({"renderer": "opengl"})


def test_ssim_and_psnr():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(32, 32, 3, generator=g)
    assert float(ssim(a, a)) == pytest.approx(1.0, abs=1e-5)
    noisy = (a + 0.1 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    assert 0.0 < float(ssim(a, noisy)) < 0.95
    assert float(psnr(a, a + 0.1)) == pytest.approx(20.0, abs=1e-3)


class PlaneHead:
    """One big triangle facing the camera (z = 0), for losses that act on a single Gaussian."""

    name = "plane"
    layout = ARKIT_LAYOUT

    def __init__(self):
        self.v = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.2, 0.0]])
        self.faces = torch.tensor([[0, 1, 2]])

    def to(self, device):
        return self

    def neutral(self):
        return self.v.clone()

    def from_motion(self, motion):
        return self.v[None].expand(motion.shape[0], -1, -1).clone()


def test_region_weights_pull_a_shared_gaussian_towards_the_region_colour():
    """One opaque Gaussian covers the whole image, whose left half is red and right half blue: plain L1 leaves it
    between the two; with the left half as the region (lambda_region) it turns red, as a mouth Gaussian that also
    covers lip pixels is pulled towards the mouth's colour."""
    head = PlaneHead()
    cam = Camera.look_at([0, 0, 3.0], [0, 0, 0], (0, 1, 0), 16, 16, 20)
    img = np.zeros((1, 16, 16, 3), np.uint8)
    img[0, :, :8] = (230, 20, 20)
    img[0, :, 8:] = (20, 20, 230)
    views = ViewSet(img, np.zeros((1, 64), np.float32), cam.world_to_cam[None], cam.K[None])
    region = np.zeros((1, 16, 16), np.float32)
    region[0, :, :8] = 1.0

    def colour_after(lambda_region):
        av = GaussianAvatar.init_from_mesh(head.v.numpy(), head.faces.numpy(), colors=np.full((1, 3), 0.5),
                                           opacity=0.999, head="plane")
        av.log_scales = av.log_scales + 3.0                      # far larger than the image
        cfg = Stage3Config(iterations=60, densify_from=100, min_gaussians=0, lambda_ssim=0.0, lambda_scale=0.0,
                           lambda_position=0.0, lr_means=1e-9, lr_means_final=1e-9, lr_scales=1e-9, lr_sh=0.05,
                           lambda_region=lambda_region)
        out = train_stage3(head, views, cfg, avatar=av, show_progress=False, region_weights=region).avatar
        return 0.28209479 * out.sh[0, 0].numpy() + 0.5

    plain, weighted = colour_after(0.0), colour_after(4.0)
    assert weighted[0] > 0.8 and weighted[2] < 0.2, weighted          # red, the region's colour
    assert weighted[0] - weighted[2] > plain[0] - plain[2] + 0.3, (plain, weighted)
    with pytest.raises(ValueError, match="region_weights has shape"):
        train_stage3(head, views, Stage3Config(iterations=1), avatar=None, show_progress=False,
                     region_weights=region[:, :8])


def test_recolouring_from_views_sets_seen_focus_gaussians_to_the_pixels_under_them():
    """``avatar-add-teeth --refit-mouth`` step 1: Gaussians on focus triangles take the colour the views show at
    their centre; the rest (and those never seen) keep theirs."""
    from rsatalker_ros.cli.avatar_add_teeth import recolor_from_views
    from rsatalker_ros.train.stage3 import triangle_pixels
    head = SphereHead()
    views = _sphere_views(head, 4, 48, seed=5)
    grey = GaussianAvatar.init_from_mesh(head.v.numpy(), head.faces.numpy(), colors=np.full((320, 3), 0.5),
                                         head="sphere")
    focus = head.v[head.faces].mean(1)[:, 0].numpy() > 0                  # the sphere's right half
    out, n = recolor_from_views(grey, head, views, focus)
    moved = (out.sh != grey.sh).any(2).any(1).numpy()                      # one Gaussian per triangle: index = triangle
    sums, counts = triangle_pixels(head, views, max_views=4)
    assert n == moved.sum() >= 0.8 * (focus & (counts >= 3)).sum() > 0      # nearly every well-seen one
    assert not moved[~focus].any() and not moved[counts == 0].any()         # off the focus or never seen: kept
    colour = 0.28209479 * out.sh[:, 0].numpy() + 0.5
    seen_colour = sums[moved] / counts[moved, None]
    assert np.abs(colour[moved] - seen_colour).mean() < 0.05
    assert np.abs(0.5 - seen_colour).mean() > 0.1                           # the views are not grey


def test_bootstrap_compiles_the_training_kernels():
    """scripts/bootstrap.sh puts the stage-3 kernels into numba's cache (a fresh clone's first stage-3 processes,
    the tests among them, would otherwise each compile them: about 40 s of CPU); the call it makes works."""
    from rsatalker_ros.train.raster_grad import compile_kernels
    with open(Path(__file__).resolve().parents[1] / "scripts" / "bootstrap.sh") as f:
        assert "from rsatalker_ros.train.raster_grad import compile_kernels; compile_kernels()" in f.read()
    compile_kernels()


def test_train_scales_render_each_step_at_a_drawn_share_of_the_view_against_the_area_averaged_image(monkeypatch):
    """``train_scales``: the steps render at the listed shares of the views' size (each drawn), against the view's
    image averaged down to that size; shares outside (0, 1] are refused."""
    import rsatalker_ros.train.stage3 as stage3
    head = SphereHead()
    views = _sphere_views(head, 2, 32, seed=3)
    seen = []
    real_render, real_loss = stage3.render_avatar, stage3.photometric_loss

    def render(avatar, verts, cam, bg, renderer):
        seen.append((cam.width, cam.height))
        return real_render(avatar, verts, cam, bg, renderer)

    def loss(pred, target, lambda_ssim):
        assert pred.shape == target.shape
        if target.shape[0] == 16:   # the 32 px image averaged over 2 x 2 pixels
            small = [views.image(i).reshape(16, 2, 16, 2, 3).mean((1, 3)) for i in range(len(views))]
            assert min(float((target - s).abs().max()) for s in small) < 1e-6
        return real_loss(pred, target, lambda_ssim)

    monkeypatch.setattr(stage3, "render_avatar", render)
    monkeypatch.setattr(stage3, "photometric_loss", loss)
    cfg = Stage3Config(iterations=16, densify_from=100, min_gaussians=0, init_per_triangle=1, train_scales=(1.0, 0.5))
    train_stage3(head, views, cfg, show_progress=False)
    assert set(seen) == {(32, 32), (16, 16)}
    seen.clear()
    train_stage3(head, views, Stage3Config(iterations=4, densify_from=100, min_gaussians=0, init_per_triangle=1),
                 show_progress=False)
    assert set(seen) == {(32, 32)}
    for bad in ([1.0, 0.0], [1.5], []):
        with pytest.raises(ValueError, match="train_scales"):
            Stage3Config.from_dict({"train_scales": bad})
