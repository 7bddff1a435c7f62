"""Stage 3: fit a Gaussian avatar (Gaussians bound to the head's triangles) to images of a talking head.

Data: ``ViewSet`` = images [M, H, W, 3] with, per image, a motion frame [64] in the head's layout (the FLAME-style
parameters that pose the mesh) and a pinhole camera. ``synthetic_views`` draws such a set from a head and a
painted texture with the textured-mesh rasteriser (the default avatars); real captures use the same format
(``ViewSet.save`` / ``ViewSet.load``, an .npz without pickles).

Loss (GaussianAvatars, DESIGN.md section 3), per iteration on one random view:
    L = (1 - l_ssim) L1 + l_ssim (1 - SSIM)                        l_ssim = 0.2
      + l_pos   mean ReLU(|mu_local| - 1)                            l_pos = 1e-2
      + l_scale mean ReLU(exp(s_local) - 0.6)                        l_scale = 1
Densification and pruning (``avatar/densify.py``) every ``densify_every`` iterations between ``densify_from`` and
``densify_until``, from the mean screen-space position gradient; children inherit the parent's triangle and no
triangle is left without Gaussians; after training the avatar is filled up to ``min_gaussians``.
Under a ``gaussian_budget`` (levels of detail, ``avatar/levels.py``) the count never exceeds the budget, there is
no fill, and a budget below the triangle count leaves some triangles without a Gaussian.
Optionally the per-frame motion parameters are fine-tuned too (``finetune_motion``; useful for tracked captures).

Gradients: on CPU from ``train/raster_grad.py`` (numba tiles + hand-written backward, same image formation as
the torch reference, about 0.2-0.3 s of one core per step at 160 px and ~25k Gaussians) or from the dense torch
reference (``renderer: torch``, slow, small images only); on a CUDA GPU from gsplat (``renderer: gsplat``).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from rsatalker_ros.config_keys import reject_unknown_keys
from rsatalker_ros.avatar.densify import (DensifyConfig, densify, faces_without_gaussians, fill_to_count,
                                          generator_on, prune)
from rsatalker_ros.avatar.gaussians import GaussianAvatar, bind, save_avatar
from rsatalker_ros.render.camera import Camera
from rsatalker_ros.train.ssim import psnr, ssim

PARAM_NAMES = ("means", "log_scales", "quats", "opacity_logits", "sh")


@dataclass
class Stage3Config:
    iterations: int = 3000            # optimisation steps (one view each)
    renderer: str = "fast"            # "fast" (CPU numba, differentiable) | "torch" (dense reference) | "gsplat" (CUDA)
    device: str = "cpu"               # torch device for the avatar ("cuda" with renderer gsplat)
    background: tuple = (1.0, 1.0, 1.0)  # rgb the renders are composited over (must match the images)
    sh_degree: int = 0                # spherical-harmonics degree of the colours (0: view-independent)
    init_per_triangle: int = 2        # Gaussians per triangle at the start
    init_opacity: float = 0.9         # starting opacity
    init_colors_from_views: bool = True  # start each triangle's Gaussians at its mean visible pixel colour
    min_gaussians: int = 20000        # after training, split the largest Gaussians up to this count
    gaussian_budget: int = 0          # > 0: hard cap on the Gaussian count (levels of detail): densification stops
                                      # there, no fill to min_gaussians, and triangles may carry no Gaussian
    lr_means: float = 5e-3            # Adam learning rate of the local means (decays to lr_means_final)
    lr_means_final: float = 5e-5      # final learning rate of the means (exponential decay)
    lr_scales: float = 1.7e-2         # local log-scales
    lr_quats: float = 1e-3            # local rotations
    lr_opacity: float = 5e-2          # opacity logits
    lr_sh: float = 1e-2               # SH colour coefficients (higher-degree ones use lr_sh / 20)
    lr_motion: float = 1e-4           # per-frame motion offsets (only with finetune_motion)
    finetune_motion: bool = False     # also optimise the motion parameters of every training frame
    lambda_ssim: float = 0.2          # weight of D-SSIM (L1 gets 1 - lambda_ssim)
    lambda_position: float = 1e-2     # weight of ReLU(|mu| - position_threshold)
    position_threshold: float = 1.0   # local units (triangle scale k)
    lambda_scale: float = 1.0         # weight of ReLU(exp(s) - scale_threshold)
    scale_threshold: float = 0.6      # local units (triangle scale k)
    densify_from: int = 300           # first iteration that densifies
    densify_until: int = 2000         # last iteration that densifies
    densify_every: int = 300          # densify / prune period (iterations)
    densify: DensifyConfig = field(default_factory=DensifyConfig)
    checkpoint_every: int = 0         # write a checkpoint every N iterations (0: only the final file)
    seed: int = 0                     # random seed (view order, initialisation, splits)
    threads: int = 1                  # torch / numba CPU threads (1 beats 2 on a shared 2-core machine)
    lr_scale_unfocused: float = 1.0   # with a ``focus`` (train_stage3): step size of the Gaussians on the other
                                      # triangles, as a share of their full step (0: frozen; e.g. to add teeth)
    lambda_region: float = 0.0        # with ``region_weights`` (train_stage3): weight of an extra L1 over the weighted
                                      # pixels (e.g. the open mouth), normalised by their weight sum, so a small
                                      # region counts as much as the whole image does in the main L1
    train_scales: tuple = (1.0,)      # each step renders at one of these shares of the view's size (drawn with equal
                                      # probability; repeat one to weight it) against the view's image area-averaged
                                      # to that size: the rasterisers' 0.3 px low-pass is fixed in pixels, so an
                                      # avatar trained at one size alone draws grain or blots at another

    @staticmethod
    def from_dict(d: dict) -> "Stage3Config":
        """Build from a (YAML) dict; unknown keys raise ValueError naming them."""
        d = dict(d or {})
        reject_unknown_keys(d, Stage3Config, "stage-3 config")
        if "densify" in d:
            reject_unknown_keys(d["densify"] or {}, DensifyConfig, "densify")
            d["densify"] = DensifyConfig(**(d["densify"] or {}))
        if "background" in d:
            d["background"] = tuple(float(x) for x in d["background"])
        if "train_scales" in d:
            d["train_scales"] = tuple(float(x) for x in d["train_scales"])
        cfg = Stage3Config(**d)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.renderer not in ("fast", "torch", "gsplat"):
            raise ValueError(f"renderer must be 'fast', 'torch' or 'gsplat', got {self.renderer!r}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if len(self.background) != 3:
            raise ValueError(f"background must be 3 rgb values, got {self.background}")
        if not 0 <= self.lambda_ssim <= 1:
            raise ValueError(f"lambda_ssim must be in 0..1, got {self.lambda_ssim}")
        if not 0.0 <= self.lr_scale_unfocused <= 1.0:
            raise ValueError(f"lr_scale_unfocused must be in 0..1, got {self.lr_scale_unfocused}")
        if self.lambda_region < 0:
            raise ValueError(f"lambda_region must be >= 0, got {self.lambda_region}")
        if not self.train_scales or not all(0.0 < float(x) <= 1.0 for x in self.train_scales):
            raise ValueError(f"train_scales must be one or more shares in (0, 1], got {self.train_scales}")
        if self.gaussian_budget < 0:
            raise ValueError(f"gaussian_budget must be 0 (none) or a positive count, got {self.gaussian_budget}")


# ------------------------------------------------------------------------------------------------------------ data
@dataclass
class ViewSet:
    """Images of a head with their motion frames and cameras.

    images [M, H, W, 3] uint8 rgb; motions [M, D] float32 (head layout, D = 64 for the default heads);
    world_to_cam [M, 4, 4] float64; K [M, 3, 3] float64 (OpenCV pixel convention, see render/camera.py).
    """
    images: np.ndarray
    motions: np.ndarray
    world_to_cam: np.ndarray
    K: np.ndarray

    def __post_init__(self):
        m = len(self.images)
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 [M, H, W, 3], got {self.images.dtype} {self.images.shape}")
        for name, shape in (("motions", (m, None)), ("world_to_cam", (m, 4, 4)), ("K", (m, 3, 3))):
            a = getattr(self, name)
            if a.ndim != len(shape) or any(s is not None and s != t for s, t in zip(shape, a.shape)):
                raise ValueError(f"{name} has shape {a.shape}; expected {tuple(s or 'D' for s in shape)} (M = {m})")

    def __len__(self) -> int:
        return len(self.images)

    @staticmethod
    def concat(sets) -> "ViewSet":
        """One ViewSet of the views of ``sets`` (same image size), in order."""
        return ViewSet(*(np.concatenate([getattr(v, k) for v in sets])
                         for k in ("images", "motions", "world_to_cam", "K")))

    def camera(self, i: int) -> Camera:
        K = self.K[i]
        h, w = self.images.shape[1:3]
        return Camera(w, h, float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), self.world_to_cam[i])

    def image(self, i: int) -> torch.Tensor:
        """Image i as float32 [H, W, 3] in 0..1."""
        return torch.from_numpy(self.images[i].astype(np.float32) / 255.0)

    def save(self, path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, images=self.images, motions=self.motions.astype(np.float32),
                            world_to_cam=self.world_to_cam, K=self.K)

    @staticmethod
    def load(path) -> "ViewSet":
        """Read a view set .npz (sizes checked before unpacking: files.read_npz); BadFileError if it is not one."""
        from rsatalker_ros.files import BadFileError, read_npz
        z = read_npz(path, "view set", max_bytes=8 << 30, expansion=256)   # white backgrounds compress well
        missing = [k for k in ("images", "motions", "world_to_cam", "K") if k not in z]
        if missing:
            raise BadFileError(path, f"not a view set: missing arrays {missing}")
        try:
            return ViewSet(z["images"], z["motions"], z["world_to_cam"], z["K"])
        except ValueError as e:
            raise BadFileError(path, str(e)) from e


def random_motions(n: int, layout, rng: np.random.Generator, neutral_fraction: float = 0.15) -> np.ndarray:
    """Plausible random motion frames [n, layout.dim]: a few active expression weights (0..0.8), jaw opening
    0..0.3 rad, small neck (+-0.12 rad) and eye (+-0.2 rad) rotations; ``neutral_fraction`` of them neutral."""
    m = np.zeros((n, layout.dim), np.float32)
    ex = layout.expression
    for i in range(n):
        if rng.random() < neutral_fraction:
            continue
        k = rng.integers(1, 5)
        idx = rng.choice(layout.n_expression, size=k, replace=False) + ex.start
        m[i, idx] = rng.uniform(0.1, 0.8, size=k)
        if rng.random() < 0.6:
            m[i, layout.jaw.start] = rng.uniform(0.0, 0.3)
        m[i, layout.neck] = rng.uniform(-0.12, 0.12, size=3)
        eye = rng.uniform(-0.2, 0.2, size=2)
        m[i, layout.eyes.start:layout.eyes.start + 2] = eye
        m[i, layout.eyes.start + 3:layout.eyes.start + 5] = eye
    return m


def orbit_camera(center, azimuth_deg: float, elevation_deg: float, distance: float, size: int,
                 fov_y_deg: float) -> Camera:
    """Camera on a sphere around ``center`` (head frame: y up, z out of the face; azimuth 0 faces the head)."""
    a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
    eye = np.asarray(center, np.float64) + distance * np.array([math.sin(a) * math.cos(e), math.sin(e),
                                                                math.cos(a) * math.cos(e)])
    return Camera.look_at(eye, center, (0.0, 1.0, 0.0), size, size, fov_y_deg)


def head_center(head) -> np.ndarray:
    """Centre of the neutral head's bounding box [3] (metres, head frame)."""
    v = head.neutral().detach().numpy()
    return 0.5 * (v.min(0) + v.max(0))


def synthetic_views(head, appearance, n: int, size: int = 160, seed: int = 0,
                    azimuth_deg: float = 75.0, elevation_deg=(-15.0, 25.0), distance: float = 0.62,
                    fov_y_deg: float = 30.0, supersample: int = 3, background=(1.0, 1.0, 1.0),
                    show_progress: bool = True, motions: np.ndarray | None = None,
                    center: np.ndarray | None = None) -> ViewSet:
    """Render ``n`` views of ``head`` (random motion frames, random cameras within +-``azimuth_deg`` and the
    elevation range, ``distance`` metres from ``center``) with the textured-mesh rasteriser.

    appearance: a ``HeadAppearance`` (``avatar.textures.paint_head``) or a UV texture [S, S, 3] in 0..1;
    motions: the frames to draw [n, D] (default ``random_motions``); center: the point [3] (metres, head frame) the
    cameras look at (default the head's centre, ``head_center``; e.g. the lips for close-ups of the mouth)."""
    from rsatalker_ros.render.mesh_raster import render_mesh
    rng = np.random.default_rng(seed)
    if motions is None:
        motions = random_motions(n, head.layout, rng)
    elif motions.shape != (n, head.layout.dim):
        raise ValueError(f"motions has shape {motions.shape}; expected ({n}, {head.layout.dim})")
    motions = np.asarray(motions, np.float32)
    center = head_center(head) if center is None else np.asarray(center, np.float64).reshape(3)
    faces = head.faces.numpy()
    if hasattr(appearance, "albedo"):
        material = dict(albedo_fn=appearance.albedo)
    else:
        material = dict(texture=np.asarray(appearance), uvs=head.uvs.numpy(), face_uvs=head.face_uvs.numpy())
    images = np.empty((n, size, size, 3), np.uint8)
    w2c = np.empty((n, 4, 4))
    K = np.empty((n, 3, 3))
    with torch.no_grad():
        verts = head.from_motion(torch.from_numpy(motions)).numpy()
    for i in tqdm(range(n), desc="drawing views", disable=not show_progress):
        cam = orbit_camera(center, rng.uniform(-azimuth_deg, azimuth_deg), rng.uniform(*elevation_deg),
                           distance * rng.uniform(0.92, 1.08), size, fov_y_deg)
        out = render_mesh(verts[i], faces, cam, background=background, supersample=supersample, **material)
        images[i] = np.clip(out.image * 255.0 + 0.5, 0, 255).astype(np.uint8)
        w2c[i], K[i] = cam.world_to_cam, cam.K
    return ViewSet(images, motions, w2c, K)


def triangle_pixels(head, views: ViewSet, max_views: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(sums [F, 3] of the pixel colours (0..1), counts [F] of the pixels) where each triangle is the visible surface,
    over up to ``max_views`` views (visibility from a z-buffer pass of the posed mesh)."""
    from rsatalker_ros.render.mesh_raster import camera_arrays, project, rasterize_triangles
    faces = head.faces.numpy()
    n_faces = faces.shape[0]
    sums = np.zeros((n_faces, 3))
    counts = np.zeros(n_faces)
    pick = np.linspace(0, len(views) - 1, min(max_views, len(views))).round().astype(int)
    with torch.no_grad():
        verts = head.from_motion(torch.from_numpy(views.motions[pick].astype(np.float32))).numpy()
    for k, i in enumerate(pick):
        view, K, w, h = camera_arrays(views.camera(int(i)))
        fid, _, _ = rasterize_triangles(project(verts[k].astype(np.float64), view, K), faces, w, h)
        seen = fid >= 0
        img = views.images[i].astype(np.float64) / 255.0
        f = fid[seen]
        counts += np.bincount(f, minlength=n_faces)
        for c in range(3):
            sums[:, c] += np.bincount(f, weights=img[..., c][seen], minlength=n_faces)
    return sums, counts


def triangle_colors_from_views(head, views: ViewSet, max_views: int = 32) -> np.ndarray:
    """Initial colour of every triangle [F, 3] (0..1): the mean of the pixels where the triangle is the visible
    surface, over up to ``max_views`` views (``triangle_pixels``, so it works for any images with known cameras and
    motion). Triangles never seen take the mean of the seen ones."""
    sums, counts = triangle_pixels(head, views, max_views)
    colors = np.empty((len(counts), 3))
    ok = counts > 0
    colors[ok] = sums[ok] / counts[ok, None]
    colors[~ok] = colors[ok].mean(0) if ok.any() else 0.5
    return colors.astype(np.float32)


# -------------------------------------------------------------------------------------------------------- training
def render_avatar(avatar: GaussianAvatar, vertices: torch.Tensor, camera: Camera, background, renderer: str):
    """Bind and render; returns (RenderResult, mean2d [N, 2] or None, world means [N, 3])."""
    wg = bind(avatar, vertices)
    if renderer == "fast":
        from rsatalker_ros.train.raster_grad import render_train
        out, mean2d = render_train(wg, camera, background)
        return out, mean2d, wg.means
    from rsatalker_ros.render.api import render
    if wg.means.requires_grad:
        wg.means.retain_grad()
    return render(wg, camera, torch.as_tensor(background, dtype=torch.float32), backend=renderer), None, wg.means


def regularisers(avatar: GaussianAvatar, cfg: Stage3Config) -> torch.Tensor:
    pos = torch.relu(avatar.means.norm(dim=1) - cfg.position_threshold).mean()
    scale = torch.relu(avatar.log_scales.exp() - cfg.scale_threshold).mean()
    return cfg.lambda_position * pos + cfg.lambda_scale * scale


def photometric_loss(pred: torch.Tensor, target: torch.Tensor, lambda_ssim: float) -> torch.Tensor:
    """(1 - l) L1 + l (1 - SSIM) for images [H, W, 3] in 0..1."""
    return (1 - lambda_ssim) * (pred - target).abs().mean() + lambda_ssim * (1 - ssim(pred, target))


def _make_optimizer(avatar: GaussianAvatar, cfg: Stage3Config, extra=None) -> torch.optim.Adam:
    groups = [
        {"params": [avatar.means], "lr": cfg.lr_means, "name": "means"},
        {"params": [avatar.log_scales], "lr": cfg.lr_scales, "name": "log_scales"},
        {"params": [avatar.quats], "lr": cfg.lr_quats, "name": "quats"},
        {"params": [avatar.opacity_logits], "lr": cfg.lr_opacity, "name": "opacity_logits"},
        {"params": [avatar.sh], "lr": cfg.lr_sh, "name": "sh"},
    ]
    if extra is not None:
        groups.append({"params": [extra], "lr": cfg.lr_motion, "name": "motion"})
    return torch.optim.Adam(groups, eps=1e-15)


def _apply_reindex(avatar: GaussianAvatar, opt: torch.optim.Adam, params: dict, parent: torch.Tensor,
                   source: torch.Tensor, fresh: torch.Tensor) -> None:
    """Swap the avatar's tensors for re-indexed ones, carrying Adam moments (zero for new children)."""
    for group in opt.param_groups:
        name = group["name"]
        if name not in PARAM_NAMES:
            continue
        old = group["params"][0]
        new = params[name].detach().clone().requires_grad_(True)
        state = opt.state.pop(old, None)
        if state:
            for key in ("exp_avg", "exp_avg_sq"):
                moved = state[key][source].clone()
                moved[fresh] = 0
                state[key] = moved
            opt.state[new] = state
        group["params"][0] = new
        setattr(avatar, name, new)
    avatar.parent = parent.clone()


def _params(avatar: GaussianAvatar) -> dict:
    return {n: getattr(avatar, n) for n in PARAM_NAMES}


@dataclass
class Stage3Result:
    avatar: GaussianAvatar
    history: list                     # [(iteration, loss, psnr of that view, n_gaussians)]
    seconds: float
    motions: torch.Tensor | None = None  # fine-tuned motions [M, D] (finetune_motion only)


def train_stage3(head, views: ViewSet, cfg: Stage3Config, avatar: GaussianAvatar | None = None,
                 out_dir: str | Path | None = None, show_progress: bool = True,
                 focus: torch.Tensor | None = None, region_weights: np.ndarray | None = None) -> Stage3Result:
    """Fit a Gaussian avatar of ``head`` to ``views``; returns the trained avatar (detached tensors).

    ``avatar`` continues from an existing avatar (same head topology); else one is initialised on the neutral
    mesh. Checkpoints (``ckpt_<iteration>.safetensors``) go to ``out_dir`` when ``cfg.checkpoint_every`` > 0.
    focus: bool [F] over the head's triangles (optional; needs no densification): the Gaussians bound elsewhere
    move only ``cfg.lr_scale_unfocused`` of each optimiser step (fine-tuning a part, e.g. new teeth).
    region_weights: float [M, H, W] in 0..1 (optional), per view the pixels of a region (e.g. the mouth) that get the
    extra L1 term ``cfg.lambda_region * sum(w |pred - target|) / (3 sum(w))``.
    """
    cfg.validate()
    if region_weights is not None and region_weights.shape != views.images.shape[:3]:
        raise ValueError(f"region_weights has shape {region_weights.shape}; expected {views.images.shape[:3]} "
                         "(one weight per pixel of every view)")
    if views.motions.shape[1] != head.layout.dim:
        raise ValueError(f"view motions have {views.motions.shape[1]} values; head {head.name!r} uses "
                         f"{head.layout.dim} ({head.layout.basis} layout)")
    torch.set_num_threads(max(1, cfg.threads))
    try:
        import numba
        numba.set_num_threads(max(1, min(cfg.threads, numba.config.NUMBA_NUM_THREADS)))
    except Exception:  # pragma: no cover - numba is a dependency; thread count is a hint
        pass
    device = torch.device(cfg.device)
    if cfg.renderer == "gsplat" and device.type != "cuda":
        raise ValueError("renderer 'gsplat' needs device 'cuda'")
    gen = generator_on(device, cfg.seed)  # split offsets are drawn on the parameters' device
    rng = np.random.default_rng(cfg.seed)
    faces = head.faces
    n_faces = faces.shape[0]
    if avatar is None:
        with torch.no_grad():
            neutral = head.neutral()
        colors = triangle_colors_from_views(head, views) if cfg.init_colors_from_views else None
        avatar = GaussianAvatar.init_from_mesh(neutral.numpy(), faces.numpy(), per_triangle=cfg.init_per_triangle,
                                               sh_degree=cfg.sh_degree, colors=colors, opacity=cfg.init_opacity,
                                               head=head.name, seed=cfg.seed)
    else:
        avatar.check_topology(faces)
    densify_cfg = cfg.densify
    if cfg.gaussian_budget:
        if len(avatar) > cfg.gaussian_budget:
            raise ValueError(f"the avatar has {len(avatar)} Gaussians, more than gaussian_budget "
                             f"{cfg.gaussian_budget}: reduce it first (avatar.levels.reduce_to_budget)")
        densify_cfg = replace(cfg.densify, max_gaussians=min(cfg.densify.max_gaussians, cfg.gaussian_budget))
    for n in PARAM_NAMES:
        setattr(avatar, n, getattr(avatar, n).detach().to(device).clone().requires_grad_(True))
    avatar.parent = avatar.parent.to(device)
    avatar.faces = avatar.faces.to(device)
    head = head.to(device)

    motions = torch.from_numpy(views.motions.astype(np.float32)).to(device)
    # on a GPU all images go over once, as uint8, instead of one float image per step
    images_dev = torch.from_numpy(views.images).to(device) if device.type == "cuda" else None
    motion_delta = torch.zeros_like(motions, requires_grad=True) if cfg.finetune_motion else None
    with torch.no_grad():
        all_verts = None if cfg.finetune_motion else head.from_motion(motions)
    opt = _make_optimizer(avatar, cfg, motion_delta)
    damped = None
    if focus is not None and cfg.lr_scale_unfocused < 1.0:
        if cfg.densify_from <= cfg.densify_until and cfg.densify_from <= cfg.iterations:
            raise ValueError("a focus needs training without densification (densify_from > iterations)")
        focus = torch.as_tensor(focus, dtype=torch.bool, device=device)
        if focus.shape != (n_faces,):
            raise ValueError(f"focus has shape {tuple(focus.shape)}; expected [{n_faces}] (one per triangle)")
        damped = ~focus[avatar.parent]                                    # [N] Gaussians that move less
    decay = (cfg.lr_means_final / cfg.lr_means) ** (1.0 / max(1, cfg.iterations))
    grad_acc = torch.zeros(len(avatar), device=device)
    grad_cnt = torch.zeros(len(avatar), device=device)
    history = []
    bg = torch.tensor(cfg.background, dtype=torch.float32, device=device)
    t0 = time.time()
    bar = tqdm(range(1, cfg.iterations + 1), desc=f"stage 3 {head.name}", disable=not show_progress)
    order = rng.permutation(len(views))
    for it in bar:
        i = int(order[(it - 1) % len(views)])
        if (it - 1) % len(views) == len(views) - 1:
            order = rng.permutation(len(views))
        cam = views.camera(i)
        target = views.image(i) if images_dev is None else images_dev[i].float() / 255.0
        weights = None if region_weights is None or cfg.lambda_region <= 0 or not region_weights[i].any() else \
            torch.from_numpy(region_weights[i].astype(np.float32)).to(device)[..., None]
        scale = cfg.train_scales[int(rng.integers(len(cfg.train_scales)))] if len(cfg.train_scales) > 1 \
            else cfg.train_scales[0]
        if scale < 1.0:
            cam = cam.with_size(max(1, round(cam.width * scale)), max(1, round(cam.height * scale)))
            target = _area_resize(target, cam.height, cam.width)
            weights = None if weights is None else _area_resize(weights, cam.height, cam.width)
        if cfg.finetune_motion:
            verts = head.from_motion(motions[i:i + 1] + motion_delta[i:i + 1])[0]
        else:
            verts = all_verts[i]
        out, mean2d, wmeans = render_avatar(avatar, verts, cam, bg, cfg.renderer)
        loss = photometric_loss(out.image, target, cfg.lambda_ssim) + regularisers(avatar, cfg)
        if weights is not None:
            loss = loss + cfg.lambda_region * (weights * (out.image - target).abs()).sum() / (3 * weights.sum())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        before = None if damped is None else {n: getattr(avatar, n).detach()[damped].clone() for n in PARAM_NAMES}
        opt.step()
        if before is not None:
            with torch.no_grad():
                for n, old in before.items():
                    p = getattr(avatar, n)
                    p[damped] = old + cfg.lr_scale_unfocused * (p[damped] - old)
        for g in opt.param_groups:
            if g["name"] == "means":
                g["lr"] = cfg.lr_means * decay ** it
        with torch.no_grad():
            # screen-space position gradient (3DGS units: pixels scaled by half the image size)
            if mean2d is not None and mean2d.grad is not None:
                gpx = mean2d.grad.norm(dim=1)
            elif wmeans.grad is not None:
                depth = (wmeans.detach() @ torch.as_tensor(cam.world_to_cam[:3, :3].T, dtype=torch.float32,
                                                           device=device))[:, 2] + float(cam.world_to_cam[2, 3])
                gpx = wmeans.grad.norm(dim=1) * depth.clamp_min(1e-3) / cam.fx
            else:
                gpx = None
            if gpx is not None:
                seen = gpx > 0
                grad_acc += gpx * 0.5 * max(cam.width, cam.height)
                grad_cnt += seen.float()
            if it % 25 == 0 or it == 1:
                p = float(psnr(out.image.detach().clamp(0, 1), target))
                history.append((it, float(loss), p, len(avatar)))
                bar.set_postfix(loss=f"{float(loss):.4f}", psnr=f"{p:.2f}", n=len(avatar))
        if cfg.densify_from <= it <= cfg.densify_until and it % cfg.densify_every == 0:
            mean_grad = grad_acc / grad_cnt.clamp_min(1)
            p, par, src, fr = densify(_params(avatar), avatar.parent, n_faces, mean_grad, densify_cfg, gen)
            _apply_reindex(avatar, opt, p, par, src, fr)
            p, par, src, fr = prune(_params(avatar), avatar.parent, n_faces, cfg.densify)
            _apply_reindex(avatar, opt, p, par, src, fr)
            grad_acc = torch.zeros(len(avatar), device=device)
            grad_cnt = torch.zeros(len(avatar), device=device)
        if out_dir is not None and cfg.checkpoint_every and it % cfg.checkpoint_every == 0:
            save_avatar(Path(out_dir) / f"ckpt_{it:06d}.safetensors", _detached(avatar, device="cpu"))
    bar.close()
    head.to("cpu")  # HeadModel.to moves in place: hand the head back on the CPU
    final = _detached(avatar, device=device)
    if len(final) < cfg.min_gaussians and not cfg.gaussian_budget:  # filled on the training device, where ``gen`` lives
        p, par, _, _ = fill_to_count(_params(final), final.parent, n_faces, cfg.min_gaussians, cfg.densify, gen)
        final = GaussianAvatar(**p, parent=par, faces=final.faces, head=final.head)
    final = _detached(final, device="cpu")
    empty = faces_without_gaussians(final.parent, n_faces)
    if empty.numel() and not cfg.gaussian_budget:
        raise RuntimeError(f"{empty.numel()} triangles lost all their Gaussians (densify/prune bug)")
    return Stage3Result(final, history, time.time() - t0,
                        None if motion_delta is None else (motions + motion_delta).detach().cpu())


def _area_resize(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """image [H, W, C] averaged over the pixel areas of a [height, width, C] grid (the ground truth a camera of that
    size would see, up to the supersampling of the views)."""
    return torch.nn.functional.interpolate(image.permute(2, 0, 1)[None], size=(height, width),
                                           mode="area")[0].permute(1, 2, 0).contiguous()


def _detached(avatar: GaussianAvatar, device="cpu") -> GaussianAvatar:
    return GaussianAvatar(**{n: getattr(avatar, n).detach().to(device).clone() for n in PARAM_NAMES},
                          parent=avatar.parent.detach().to(device).clone(),
                          faces=avatar.faces.detach().to(device).clone(), head=avatar.head)


# ------------------------------------------------------------------------------------------------------ evaluation
@torch.no_grad()
def evaluate(avatar: GaussianAvatar, head, views: ViewSet, background=(1.0, 1.0, 1.0), backend: str = "cpu"):
    """PSNR / SSIM of the avatar's renders against ``views`` (e.g. held-out cameras and expressions).

    Returns (metrics dict: psnr, ssim (means over views), psnr_head (PSNR inside the union of the rendered and
    true head silhouettes, background excluded), renders [M, H, W, 3] float32).
    """
    from rsatalker_ros.render.api import render
    verts = head.from_motion(torch.from_numpy(views.motions.astype(np.float32)))
    bg = np.asarray(background, np.float32)
    ps, ss, ph, renders = [], [], [], []
    for i in range(len(views)):
        wg = bind(avatar, verts[i])
        img = render(wg, views.camera(i), bg, backend=backend).image.clamp(0, 1).float()
        tgt = views.image(i)
        ps.append(float(psnr(img, tgt)))
        ss.append(float(ssim(img, tgt)))
        fg = ((tgt - torch.from_numpy(bg)).abs().sum(-1) > 1e-3) | ((img - torch.from_numpy(bg)).abs().sum(-1) > 1e-3)
        if fg.any():
            ph.append(float(10 * torch.log10(1.0 / ((img - tgt)[fg] ** 2).mean())))
        renders.append(img.numpy())
    return ({"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss)),
             "psnr_head": float(np.mean(ph)) if ph else float("inf"), "views": len(views)}, np.stack(renders))


def comparison_sheet(views: ViewSet, renders: np.ndarray, path, columns: int = 6) -> None:
    """PNG with ground truth (top row of each pair) above the avatar's renders (bottom row)."""
    from PIL import Image
    n = min(len(views), columns)
    gt = np.concatenate([views.images[i] for i in range(n)], axis=1)
    rd = np.concatenate([(np.clip(renders[i], 0, 1) * 255 + 0.5).astype(np.uint8) for i in range(n)], axis=1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([gt, rd], axis=0)).save(path)


def config_dict(cfg: Stage3Config) -> dict:
    """The config as plain YAML-friendly values."""
    d = asdict(cfg)
    d["background"] = list(cfg.background)
    d["train_scales"] = list(cfg.train_scales)
    return d
