"""GPU backend: gsplat's ``rasterization`` (gsplat 1.5.x, CUDA only; imported lazily).

Written against gsplat's documented API:
    rasterization(means [N,3], quats [N,4] wxyz, scales [N,3], opacities [N], colors [N,K,3] (with sh_degree),
                  viewmats [C,4,4] world-to-camera, Ks [C,3,3], width, height, near_plane=0.01, eps2d=0.3,
                  sh_degree, backgrounds [C,3], render_mode="RGB+ED", rasterize_mode="classic")
    -> render_colors [C,H,W,4] (rgb + expected depth), render_alphas [C,H,W,1], meta
gsplat puts pixel (j, i)'s centre at (j + 0.5, i + 0.5); our cameras (CameraInfo / OpenCV) put it at (j, i), so
the principal point handed to gsplat is shifted by +0.5 px. Everything else (EWA projection, 0.3 px low-pass,
alpha >= 1/255, transmittance 1e-4, SH colours + 0.5 clamped at 0) is the same image formation as our backends.
"""

import torch

from .camera import Camera


def gsplat_available() -> bool:
    """True when CUDA is usable and gsplat imports."""
    if not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401
    except Exception:
        return False
    return True


def render_gsplat(means, quats, scales, opacities, sh, camera: Camera, background, device=None):
    """means [N,3], quats [N,4] wxyz, scales [N,3], opacities [N], sh [N,K,3], background [3]
    -> (image [H,W,3], alpha [H,W], depth [H,W]) float32 on the CUDA device (differentiable through gsplat)."""
    try:
        from gsplat import rasterization
    except ImportError as e:
        raise RuntimeError("the gsplat backend needs gsplat (pip install gsplat==1.5.3) and a CUDA GPU") from e
    if not torch.cuda.is_available():
        raise RuntimeError("the gsplat backend needs a CUDA GPU (torch.cuda.is_available() is False)")
    dev = torch.device(device) if device is not None else (means.device if means.is_cuda else torch.device("cuda"))
    f = dict(dtype=torch.float32, device=dev)
    K = torch.tensor([[camera.fx, 0.0, camera.cx + 0.5], [0.0, camera.fy, camera.cy + 0.5], [0.0, 0.0, 1.0]], **f)
    viewmat = torch.as_tensor(camera.world_to_cam, **f)
    bg = torch.as_tensor(background, **f).reshape(1, 3)
    K_sh = sh.shape[-2]
    degree = {1: 0, 4: 1, 9: 2, 16: 3}[K_sh]
    colors, alphas, _ = rasterization(
        means.to(**f), quats.to(**f), scales.to(**f), opacities.to(**f), sh.to(**f),
        viewmat[None], K[None], camera.width, camera.height,
        near_plane=0.01, far_plane=1e10, eps2d=0.3, sh_degree=degree, packed=False,
        backgrounds=bg, render_mode="RGB+ED", rasterize_mode="classic")
    return colors[0, ..., :3], alphas[0, ..., 0], colors[0, ..., 3]
