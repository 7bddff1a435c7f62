"""The one rendering API (gsplat style: stateless functions, tensor shapes on every argument).

    result = render(gaussians, camera, background=None, backend="auto")
    result.image [H, W, 3] float32 rgb (0..1 for colours in range), result.alpha [H, W], result.depth [H, W]
    rgb8 = render_uint8(gaussians, camera)  ->  numpy uint8 [H, W, 3] (rgb, channel 0 = red), the live path

Backends (same image formation, see ``reference_torch``):
    "cpu"    tile rasteriser (C++ kernel, numba fallback: cpu_tiles), float32, no gradients (the live renderer);
    "torch"  dense reference in plain torch, differentiable (tests, stage-3 training on small images);
    "gsplat" gsplat's CUDA rasterizer (needs CUDA + gsplat), differentiable;
    "auto"   gsplat for CUDA tensors when gsplat is importable; torch when any input needs gradients; else cpu.
Depth is the expected z-depth in the camera frame (sum w z / alpha; 0 where nothing was drawn), metres.
"""

from dataclasses import dataclass

import numpy as np
import torch

from ..avatar.gaussians import WorldGaussians
from .camera import Camera
from .sh import sh_to_rgb

BACKENDS = ("auto", "cpu", "torch", "gsplat")


@dataclass
class RenderResult:
    image: torch.Tensor  # [H, W, 3] float32 rgb
    alpha: torch.Tensor  # [H, W] float32 accumulated opacity 0..1
    depth: torch.Tensor  # [H, W] float32 expected depth (m), 0 where alpha = 0


def _check(g: WorldGaussians) -> int:
    if not isinstance(g, WorldGaussians):
        raise ValueError(f"render() takes WorldGaussians (from avatar.bind), got {type(g).__name__}")
    if g.means.dim() != 2 or g.means.shape[1] != 3:
        raise ValueError(f"means has shape {tuple(g.means.shape)}; expected [N, 3] (index a batch with g[b] first)")
    n = g.means.shape[0]
    for name, shape in (("scales", (n, 3)), ("quats", (n, 4)), ("opacities", (n,))):
        if tuple(getattr(g, name).shape) != shape:
            raise ValueError(f"{name} has shape {tuple(getattr(g, name).shape)}; expected {list(shape)}")
    if g.sh.dim() != 3 or g.sh.shape[0] != n or g.sh.shape[2] != 3 or g.sh.shape[1] not in (1, 4, 9, 16):
        raise ValueError(f"sh has shape {tuple(g.sh.shape)}; expected [N={n}, K in (1, 4, 9, 16), 3]")
    return n


def _background(background) -> np.ndarray:
    if background is None:
        return np.zeros(3, np.float32)
    bg = np.asarray(background.detach().cpu() if isinstance(background, torch.Tensor) else background,
                    dtype=np.float32).reshape(-1)
    if bg.shape != (3,):
        raise ValueError(f"background has shape {bg.shape}; expected [3] rgb")
    return bg


def _needs_grad(g: WorldGaussians) -> bool:
    return any(t.requires_grad for t in (g.means, g.scales, g.quats, g.opacities, g.sh))


def choose_backend(g: WorldGaussians, backend: str = "auto") -> str:
    """Resolve "auto" to a concrete backend name (see module docstring)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    if backend != "auto":
        return backend
    if g.means.is_cuda:
        from .gsplat_backend import gsplat_available
        if gsplat_available():
            return "gsplat"
        return "torch"
    return "torch" if _needs_grad(g) else "cpu"


def _cpu_inputs(g: WorldGaussians):
    """Zero-copy numpy views of CPU float32 tensors (copies otherwise); SH colours are evaluated by the kernel."""
    def arr(t):
        return t.detach().to("cpu", torch.float32).numpy()
    return arr(g.means), arr(g.quats), arr(g.scales), arr(g.opacities), arr(g.sh)


def render(gaussians: WorldGaussians,  # means [N,3], scales [N,3], quats [N,4] wxyz, opacities [N], sh [N,K,3]
           camera: Camera,              # width x height pinhole, world_to_cam [4,4]
           background=None,             # [3] rgb 0..1, default black
           backend: str = "auto",       # "auto" | "cpu" | "torch" | "gsplat"
           ) -> RenderResult:
    """Render one set of world Gaussians -> RenderResult(image [H,W,3], alpha [H,W], depth [H,W]) float32."""
    _check(gaussians)
    bg = _background(background)
    name = choose_backend(gaussians, backend)
    if name == "cpu":
        from .cpu_tiles import render_cpu
        img, a, d = render_cpu(*_cpu_inputs(gaussians), camera, bg)
        return RenderResult(torch.from_numpy(img), torch.from_numpy(a), torch.from_numpy(d))
    if name == "torch":
        from .reference_torch import render_torch
        g = gaussians
        colors = sh_to_rgb(g.sh, g.means, camera.position)
        img, a, d = render_torch(g.means, g.quats, g.scales, g.opacities, colors, camera,
                                 torch.as_tensor(bg, dtype=g.means.dtype, device=g.means.device))
        return RenderResult(img, a, d)
    from .gsplat_backend import render_gsplat
    g = gaussians
    img, a, d = render_gsplat(g.means, g.quats, g.scales, g.opacities, g.sh, camera, bg)
    return RenderResult(img, a, d)


def render_uint8(gaussians: WorldGaussians,  # as render()
                 camera: Camera,
                 background=None,             # [3] rgb 0..1, default black
                 backend: str = "cpu",        # the live path defaults to the CPU rasteriser
                 ) -> np.ndarray:
    """Render straight to an 8-bit image: numpy uint8 [H, W, 3], rgb order (channel 0 = red), row-major from the
    top-left pixel (sensor_msgs/Image encoding "rgb8")."""
    _check(gaussians)
    bg = _background(background)
    name = choose_backend(gaussians, backend)
    if name == "cpu":
        from .cpu_tiles import render_cpu
        return render_cpu(*_cpu_inputs(gaussians), camera, bg, uint8=True)
    with torch.no_grad():
        img = render(gaussians, camera, bg, backend=name).image
    return (img.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()
