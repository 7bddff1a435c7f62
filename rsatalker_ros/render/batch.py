"""Many avatars in one rendering call (gsplat style: stateless functions, tensor shapes on every argument).

    cams = camera_batch(cameras, backgrounds, device="cuda")   # per-camera tensors, built once, reused every tick
    out = render_batch([binder_a(verts_a), binder_b(verts_b)], cams)   # BatchResult: images [B, H, W, 3], ...
    rgb8 = render_batch_uint8([...], cams)                       # numpy uint8 [B, H, W, 3], rgb

Image b is drawn from the b-th scene in the order given: each item of ``gaussians`` is one scene (fields [N, ...])
or a batch of scenes of one avatar (fields [b_i, N, ...], as ``TorchBinder``/``bind`` return for [b_i, V, 3]
vertices), and the items together hold exactly one scene per camera. Scenes may differ in Gaussian count and SH
degree. Stamps, participant names and topics stay with the caller (``render/participants.py`` keeps them).

Backends: "gsplat" rasterises all scenes in one call of gsplat's batched ``rasterization`` (scenes padded to a
common Gaussian count with fully transparent Gaussians and to a common SH degree with zero coefficients, which
changes no pixel); "cpu" and "torch" render the scenes one by one with ``render()``; "auto" picks gsplat when the
Gaussians are on a CUDA device and gsplat imports, else cpu (torch when any input needs gradients).
"""

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..avatar.gaussians import WorldGaussians
from .api import BACKENDS, _needs_grad, render
from .camera import Camera


@dataclass(frozen=True)
class CameraBatch:
    """B cameras of one image size with their backgrounds, and the tensors gsplat takes, built once on ``device``.

    cameras: B cameras; backgrounds [B, 3] float32 rgb 0..1; viewmats [B, 4, 4] world-to-camera, Ks [B, 3, 3]
    (gsplat's pixel convention: principal point + 0.5) and bg [B, 3], all float32 on ``device``."""
    cameras: tuple
    backgrounds: np.ndarray
    viewmats: torch.Tensor
    Ks: torch.Tensor
    bg: torch.Tensor
    device: torch.device

    def __len__(self) -> int:
        return len(self.cameras)

    @property
    def width(self) -> int:
        return self.cameras[0].width

    @property
    def height(self) -> int:
        return self.cameras[0].height


def camera_batch(cameras: Sequence[Camera],  # B cameras, all of one width x height
                 backgrounds=None,            # None (black) | [3] for all | [B, 3] rgb 0..1
                 device="cpu",                # where the per-camera tensors live (the Gaussians' device)
                 ) -> CameraBatch:
    """Build the per-camera tensors of B cameras once (reuse the result for every tick while they stay put)."""
    cameras = tuple(cameras)
    if not cameras or not all(isinstance(c, Camera) for c in cameras):
        raise ValueError("cameras must be a non-empty sequence of render.camera.Camera")
    sizes = {(c.width, c.height) for c in cameras}
    if len(sizes) != 1:
        raise ValueError(f"one batch renders one image size; got {sorted(sizes)} (make one batch per size)")
    B = len(cameras)
    bg = np.zeros((B, 3), np.float32) if backgrounds is None else np.asarray(backgrounds, dtype=np.float32)
    if bg.shape == (3,):
        bg = np.tile(bg, (B, 1))
    if bg.shape != (B, 3):
        raise ValueError(f"backgrounds has shape {bg.shape}; expected [3] or [B={B}, 3]")
    from .gsplat_backend import camera_tensors
    dev = torch.device(device)
    views, Ks = zip(*(camera_tensors(c, dev) for c in cameras))
    return CameraBatch(cameras, bg, torch.stack(views), torch.stack(Ks), torch.as_tensor(bg, device=dev), dev)


@dataclass
class BatchResult:
    images: torch.Tensor  # [B, H, W, 3] float32 rgb
    alphas: torch.Tensor  # [B, H, W] float32 accumulated opacity
    depths: torch.Tensor | None  # [B, H, W] float32 expected depth (m), 0 where alpha = 0; None if not asked for


def _scenes(gaussians) -> list:
    """Items -> list of (WorldGaussians, batch size or None for an unbatched item)."""
    if isinstance(gaussians, WorldGaussians):
        gaussians = [gaussians]
    out = []
    for i, g in enumerate(gaussians):
        if not isinstance(g, WorldGaussians):
            raise ValueError(f"gaussians[{i}] is {type(g).__name__}; expected WorldGaussians (from a binder)")
        if g.means.dim() == 2:
            out.append((g, None))
        elif g.means.dim() == 3:
            out.append((g, g.means.shape[0]))
        else:
            raise ValueError(f"gaussians[{i}].means has shape {tuple(g.means.shape)}; expected [N, 3] or [B, N, 3]")
    return out


def _validated(gaussians, cameras) -> list:
    scenes = _scenes(gaussians)
    if not isinstance(cameras, CameraBatch):
        raise ValueError(f"cameras must be a CameraBatch (render.batch.camera_batch), got {type(cameras).__name__}")
    count = sum(1 if b is None else b for _, b in scenes)
    if count != len(cameras):
        raise ValueError(f"gaussians hold {count} scenes but there are {len(cameras)} cameras; expected one camera "
                         f"per scene")
    return scenes


def choose_batch_backend(gaussians, backend: str = "auto") -> str:
    """Resolve "auto" for a batch (see module docstring)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    if backend != "auto":
        return backend
    scenes = _scenes(gaussians)
    if all(g.means.is_cuda for g, _ in scenes):
        from .gsplat_backend import gsplat_available
        if gsplat_available():
            return "gsplat"
    return "torch" if any(_needs_grad(g) for g, _ in scenes) else "cpu"


def _one_by_one(scenes):
    for g, b in scenes:
        if b is None:
            yield g
        else:
            for i in range(b):
                yield g[i]


def _padded(scenes, device):
    """All scenes as one [B, N_max, ...] set: extra Gaussians are transparent (opacity 0, never drawn) and extra SH
    coefficients zero, so every image is the same as that scene's own."""
    n_max = max(len(g) for g, _ in scenes)
    k_max = max(g.sh.shape[-2] for g, _ in scenes)
    if len(scenes) == 1 and scenes[0][1] is not None:  # one avatar's batch: already one tensor set
        g = scenes[0][0]
        return g.means, g.quats, g.scales, g.opacities, g.sh
    f = dict(dtype=torch.float32, device=device)
    parts = {k: [] for k in ("means", "quats", "scales", "opacities", "sh")}
    for g, b in scenes:
        b1 = 1 if b is None else b
        n, k = len(g), g.sh.shape[-2]
        means, quats, scales = (t.to(**f).reshape(b1, n, -1) for t in (g.means, g.quats, g.scales))
        opac, sh = g.opacities.to(**f).reshape(b1, n), g.sh.to(**f).reshape(b1, n, k, 3)
        if k < k_max:
            sh = torch.cat([sh, sh.new_zeros(b1, n, k_max - k, 3)], dim=2)
        if n < n_max:
            pad = n_max - n
            means = torch.cat([means, means.new_zeros(b1, pad, 3)], 1)
            quats = torch.cat([quats, quats.new_tensor([1.0, 0.0, 0.0, 0.0]).expand(b1, pad, 4)], 1)
            scales = torch.cat([scales, scales.new_full((b1, pad, 3), 1e-6)], 1)
            opac = torch.cat([opac, opac.new_zeros(b1, pad)], 1)
            sh = torch.cat([sh, sh.new_zeros(b1, pad, k_max, 3)], 1)
        for key, t in zip(parts, (means, quats, scales, opac, sh)):
            parts[key].append(t)
    return tuple(torch.cat(parts[k]) for k in parts)


def render_batch(gaussians,            # WorldGaussians or a list of them: fields [N, ...] or [b_i, N_i, ...]
                 cameras: CameraBatch,  # B cameras (camera_batch), B = number of scenes in `gaussians`
                 backend: str = "auto",  # "auto" | "cpu" | "torch" | "gsplat"
                 with_depth: bool = True,  # also compute the expected depth (gsplat: "RGB+ED" instead of "RGB")
                 ) -> BatchResult:
    """Render B scenes, scene b through camera b -> BatchResult(images [B,H,W,3], alphas [B,H,W], depths)."""
    scenes = _validated(gaussians, cameras)
    name = choose_batch_backend(gaussians, backend)
    if name == "gsplat":
        from .gsplat_backend import render_gsplat_batch
        dev = cameras.device
        img, alpha, depth = render_gsplat_batch(*_padded(scenes, dev), cameras.viewmats, cameras.Ks, cameras.bg,
                                                cameras.width, cameras.height, with_depth, device=dev)
        return BatchResult(img, alpha, depth)
    outs = [render(g, cam, background=bg, backend=name)
            for g, cam, bg in zip(_one_by_one(scenes), cameras.cameras, cameras.backgrounds)]
    return BatchResult(torch.stack([o.image for o in outs]), torch.stack([o.alpha for o in outs]),
                       torch.stack([o.depth for o in outs]) if with_depth else None)


def host_buffer(cameras: CameraBatch) -> torch.Tensor:
    """A reusable uint8 [B, H, W, 3] host tensor for ``render_batch_uint8(out=...)``; page-locked when
    the cameras live on a CUDA device (the device-to-host copy then runs at full speed)."""
    pin = cameras.device.type == "cuda"
    return torch.empty((len(cameras), cameras.height, cameras.width, 3), dtype=torch.uint8, pin_memory=pin)


def render_batch_uint8(gaussians,            # as render_batch
                       cameras: CameraBatch,  # B cameras (camera_batch)
                       backend: str = "auto",  # as render_batch
                       out: torch.Tensor | None = None,  # optional host uint8 [B, H, W, 3] to fill (host_buffer)
                       ) -> np.ndarray:
    """Render B scenes straight to 8-bit rgb: numpy uint8 [B, H, W, 3] in host memory (a view of ``out`` when
    given). On the GPU the conversion runs there and one copy brings all B images over."""
    scenes = _validated(gaussians, cameras)
    name = choose_batch_backend(gaussians, backend)
    if name == "cpu":
        from .api import render_uint8
        stacked = np.stack([render_uint8(g, cam, background=bg, backend="cpu")
                            for g, cam, bg in zip(_one_by_one(scenes), cameras.cameras, cameras.backgrounds)])
        if out is None:
            return stacked
        out.numpy()[...] = stacked
        return out.numpy()
    with torch.no_grad():
        img = render_batch(gaussians, cameras, backend=name, with_depth=False).images
        rgb8 = (img.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)
    if out is None:
        return rgb8.cpu().numpy()
    if tuple(out.shape) != tuple(rgb8.shape) or out.dtype != torch.uint8:
        raise ValueError(f"out has shape {tuple(out.shape)} {out.dtype}; expected {tuple(rgb8.shape)} uint8")
    out.copy_(rgb8)
    return out.numpy()
