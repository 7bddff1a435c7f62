"""SSIM and PSNR for images in torch (differentiable), as used by stage-3 training and the avatar evaluation.

SSIM follows Wang et al. 2004: an 11x11 Gaussian window (sigma 1.5), C1 = (0.01 L)^2, C2 = (0.03 L)^2 with
dynamic range L = 1, averaged over pixels (valid region, no padding) and channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _kernel1d(size: int, sigma: float, dtype, device) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter (valid region) of x [B, C, H, W] with the 1-D kernel g [k]."""
    c, k = x.shape[1], g.shape[0]
    x = F.conv2d(x, g.reshape(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return F.conv2d(x, g.reshape(1, 1, 1, k).expand(c, 1, 1, k), groups=c)


def _as_nchw(img: torch.Tensor) -> torch.Tensor:
    if img.ndim == 3:  # [H, W, C]
        return img.permute(2, 0, 1)[None]
    if img.ndim == 4:  # [B, H, W, C]
        return img.permute(0, 3, 1, 2)
    raise ValueError(f"image must be [H, W, C] or [B, H, W, C], got shape {tuple(img.shape)}")


def ssim(a: torch.Tensor, b: torch.Tensor, window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of two images with values in 0..1, shape [H, W, C] or [B, H, W, C] (channels last).

    Returns a scalar tensor (1 for identical images). Images smaller than the window use a window clipped
    to the image size.
    """
    if a.shape != b.shape:
        raise ValueError(f"ssim needs images of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    x, y = _as_nchw(a), _as_nchw(b)
    c = x.shape[1]
    size = min(window_size, x.shape[2], x.shape[3])
    g = _kernel1d(size, sigma, x.dtype, x.device)
    stats = _blur(torch.cat([x, y, x * x, y * y, x * y], dim=1), g)  # one filter pass for the five moments
    mu_x, mu_y, exx, eyy, exy = stats.split(c, dim=1)
    sxx = exx - mu_x ** 2
    syy = eyy - mu_y ** 2
    sxy = exy - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2)
    return (num / den).mean()


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of two images with values in 0..1 (any matching shape); inf for identical images."""
    if a.shape != b.shape:
        raise ValueError(f"psnr needs images of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    mse = torch.mean((a.float() - b.float()) ** 2)
    return 10.0 * torch.log10(1.0 / mse)
