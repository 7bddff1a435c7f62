"""GPU backend: gsplat's ``rasterization`` (gsplat 1.5.x, CUDA only; imported lazily).

Written against gsplat's documented API (1.5.3):
    rasterization(means [..., N, 3], quats [..., N, 4] wxyz, scales [..., N, 3], opacities [..., N],
                  colors [..., N, K, 3] (with sh_degree, (sh_degree + 1)^2 <= K), viewmats [..., C, 4, 4]
                  world-to-camera, Ks [..., C, 3, 3], width, height, near_plane=0.01, eps2d=0.3, sh_degree,
                  backgrounds [..., C, 3], render_mode="RGB" | "RGB+ED", rasterize_mode="classic")
    -> render_colors [..., C, H, W, 3 (+1 expected depth)], render_alphas [..., C, H, W, 1], meta
The leading dimensions "..." are batch dimensions shared by every argument: each batch element is its own scene
(its own N Gaussians, same N for all) seen by its own C cameras, and all images have one width and height.
gsplat puts pixel (j, i)'s centre at (j + 0.5, i + 0.5); our cameras (CameraInfo / OpenCV) put it at (j, i), so
the principal point handed to gsplat is shifted by +0.5 px. Everything else (EWA projection, 0.3 px low-pass,
alpha >= 1/255, transmittance 1e-4, SH colours + 0.5 clamped at 0) is the same image formation as our backends.

The per-camera tensors (viewmat, K, background) are built once per camera and device and cached
(``camera_tensors``), not on every call.
"""

import functools

import numpy as np
import torch

from .camera import Camera

SH_DEGREE_OF_K = {1: 0, 4: 1, 9: 2, 16: 3}


def gsplat_available() -> bool:
    """True when CUDA is usable and gsplat imports."""
    if not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401
    except Exception:
        return False
    return True


def _rasterization():
    try:
        from gsplat import rasterization
    except ImportError as e:
        raise RuntimeError("the gsplat backend needs gsplat (pip install gsplat==1.5.3) and a CUDA GPU") from e
    if not torch.cuda.is_available():
        raise RuntimeError("the gsplat backend needs a CUDA GPU (torch.cuda.is_available() is False)")
    return rasterization


def camera_key(camera: Camera) -> tuple:
    """Hashable identity of a camera's rendering parameters (cameras are mutable dataclasses, not hashable)."""
    return (camera.width, camera.height, float(camera.fx), float(camera.fy), float(camera.cx), float(camera.cy),
            np.ascontiguousarray(camera.world_to_cam, dtype=np.float64).tobytes())


@functools.lru_cache(maxsize=256)
def _camera_tensors(key: tuple, device: torch.device):
    w, h, fx, fy, cx, cy, w2c = key
    f = dict(dtype=torch.float32, device=device)
    K = torch.tensor([[fx, 0.0, cx + 0.5], [0.0, fy, cy + 0.5], [0.0, 0.0, 1.0]], **f)
    viewmat = torch.as_tensor(np.frombuffer(w2c, dtype=np.float64).reshape(4, 4).copy(), **f)
    return viewmat, K


@functools.lru_cache(maxsize=64)
def _background_tensor(rgb: tuple, device: torch.device) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.float32, device=device)


def camera_tensors(camera: Camera, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(viewmat [4, 4] world-to-camera, K [3, 3] in gsplat's pixel convention) float32 on ``device``, built once
    per camera and device and then served from a cache (do not modify them in place)."""
    return _camera_tensors(camera_key(camera), torch.device(device))


def background_tensor(background, device) -> torch.Tensor:
    """background [3] rgb (sequence or array) -> cached float32 tensor [3] on ``device`` (do not modify it)."""
    rgb = tuple(float(x) for x in np.asarray(background, dtype=np.float32).reshape(-1))
    if len(rgb) != 3:
        raise ValueError(f"background has {len(rgb)} values; expected 3 (rgb)")
    return _background_tensor(rgb, torch.device(device))


def _device(means: torch.Tensor, device) -> torch.device:
    return torch.device(device) if device is not None else (means.device if means.is_cuda else torch.device("cuda"))


def render_gsplat(means, quats, scales, opacities, sh, camera: Camera, background, device=None):
    """means [N,3], quats [N,4] wxyz, scales [N,3], opacities [N], sh [N,K,3], background [3]
    -> (image [H,W,3], alpha [H,W], depth [H,W]) float32 on the CUDA device (differentiable through gsplat)."""
    rasterization = _rasterization()
    dev = _device(means, device)
    f = dict(dtype=torch.float32, device=dev)
    viewmat, K = camera_tensors(camera, dev)
    bg = background_tensor(background, dev)
    colors, alphas, _ = rasterization(
        means.to(**f), quats.to(**f), scales.to(**f), opacities.to(**f), sh.to(**f),
        viewmat[None], K[None], camera.width, camera.height,
        near_plane=0.01, far_plane=1e10, eps2d=0.3, sh_degree=SH_DEGREE_OF_K[sh.shape[-2]], packed=False,
        backgrounds=bg[None], render_mode="RGB+ED", rasterize_mode="classic")
    return colors[0, ..., :3], alphas[0, ..., 0], colors[0, ..., 3]


def render_gsplat_batch(means, quats, scales, opacities, sh, viewmats, Ks, backgrounds, width: int, height: int,
                        with_depth: bool = True, device=None):
    """B scenes, each seen by its own camera, in one gsplat call.

    means [B,N,3], quats [B,N,4] wxyz, scales [B,N,3], opacities [B,N], sh [B,N,K,3], viewmats [B,4,4],
    Ks [B,3,3] (gsplat convention, see ``camera_tensors``), backgrounds [B,3]
    -> (images [B,H,W,3], alphas [B,H,W], depths [B,H,W] or None without ``with_depth``) float32 on the device."""
    rasterization = _rasterization()
    dev = _device(means, device)
    f = dict(dtype=torch.float32, device=dev)
    colors, alphas, _ = rasterization(
        means.to(**f), quats.to(**f), scales.to(**f), opacities.to(**f), sh.to(**f),
        viewmats.to(**f)[:, None], Ks.to(**f)[:, None], int(width), int(height),
        near_plane=0.01, far_plane=1e10, eps2d=0.3, sh_degree=SH_DEGREE_OF_K[sh.shape[-2]], packed=False,
        backgrounds=backgrounds.to(**f)[:, None], render_mode="RGB+ED" if with_depth else "RGB",
        rasterize_mode="classic")
    return colors[:, 0, ..., :3], alphas[:, 0, ..., 0], (colors[:, 0, ..., 3] if with_depth else None)
