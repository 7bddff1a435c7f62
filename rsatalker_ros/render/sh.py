"""Real spherical harmonics colours, degree 0..3, in the 3DGS / gsplat convention.

colour = clamp_min(sum_k SH_k(dir) * sh[k] + 0.5, 0), dir = normalised (mean - camera centre) in world space.
"""

import torch

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
         1.445305721320277, -0.5900435899266435)


def sh_basis(dirs: torch.Tensor, degree: int) -> torch.Tensor:
    """dirs [..., 3] unit vectors -> basis values [..., (degree+1)^2]."""
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [SH_C2[0] * xy, SH_C2[1] * yz, SH_C2[2] * (2 * zz - xx - yy), SH_C2[3] * xz, SH_C2[4] * (xx - yy)]
    if degree >= 3:
        out += [SH_C3[0] * y * (3 * xx - yy), SH_C3[1] * xy * z, SH_C3[2] * y * (4 * zz - xx - yy),
                SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy), SH_C3[4] * x * (4 * zz - xx - yy),
                SH_C3[5] * z * (xx - yy), SH_C3[6] * x * (xx - 3 * yy)]
    return torch.stack(out, dim=-1)


def sh_to_rgb(sh: torch.Tensor, means: torch.Tensor, camera_position) -> torch.Tensor:
    """sh [N, K, 3], means [N, 3] world, camera_position [3] world -> rgb [N, 3] (>= 0, not clamped above)."""
    K = sh.shape[-2]
    degree = {1: 0, 4: 1, 9: 2, 16: 3}.get(K)
    if degree is None:
        raise ValueError(f"sh has {K} coefficients per colour; expected 1, 4, 9 or 16")
    if degree == 0:
        return (SH_C0 * sh[:, 0, :] + 0.5).clamp_min(0.0)
    cam = torch.as_tensor(camera_position, dtype=means.dtype, device=means.device)
    d = means - cam
    d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    basis = sh_basis(d, degree)  # [N, K]
    return ((basis[..., None] * sh).sum(-2) + 0.5).clamp_min(0.0)
