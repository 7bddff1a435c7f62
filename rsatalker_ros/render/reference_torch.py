"""Slow dense reference renderer in plain torch (differentiable): the image formation of 3DGS / gsplat.

Per Gaussian (EWA splatting, gsplat "classic" mode):
    t = W mean + w (camera frame);  culled if t_z < near (0.01)
    Sigma = R(q) diag(s)^2 R(q)^T;  Sigma_c = W Sigma W^T
    J = [[fx/z, 0, -fx x/z^2], [0, fy/z, -fy y/z^2]]  (x/z, y/z clamped to 1.3x the field of view, as gsplat)
    cov2d = J Sigma_c J^T + 0.3 I  (low-pass);  conic = cov2d^-1;  mean2d = (fx x/z + cx, fy y/z + cy)
Per pixel (u, v) (pixel centres at integers, CameraInfo convention), Gaussians front to back by depth t_z:
    sigma = 0.5 (A dx^2 + C dy^2) + B dx dy with d = mean2d - (u, v);  skipped if sigma < 0
    alpha = min(0.999, opacity exp(-sigma));  skipped if alpha < 1/255
    stop before the Gaussian whose transmittance after it would fall to <= 1e-4
    rgb = sum alpha_i T_i c_i + T_final background;  alpha = 1 - T_final;
    depth = sum alpha_i T_i z_i / alpha (expected depth, 0 where alpha = 0)
A Gaussian only touches pixels within extent * sqrt(cov2d diagonal) of its centre, extent = sqrt(2 ln(255 opacity))
(outside, alpha < 1/255 exactly), which the reference uses to process the image in pixel blocks.
"""

import torch

from .camera import Camera

ALPHA_MIN = 1.0 / 255.0
T_MIN = 1e-4
EPS2D = 0.3
NEAR = 0.01
FAR = 1e10


def project_torch(means, quats, scales, opacities, camera: Camera, eps2d: float = EPS2D):
    """EWA projection. means [N, 3], quats [N, 4] wxyz, scales [N, 3], opacities [N].

    Returns dict: mean2d [N, 2] px, conic [N, 3] (A, B, C), depth [N] m, extent [N, 2] px (half-widths of the
    box where alpha >= 1/255), valid [N] bool.
    """
    dt = means.dtype
    W = torch.as_tensor(camera.world_to_cam, dtype=dt, device=means.device)
    Rw, tw = W[:3, :3], W[:3, 3]
    pc = means @ Rw.T + tw
    x, y, z = pc.unbind(-1)
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    qw, qx, qy, qz = q.unbind(-1)
    Rq = torch.stack([
        1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qw * qz), 2 * (qx * qz + qw * qy),
        2 * (qx * qy + qw * qz), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qw * qx),
        2 * (qx * qz - qw * qy), 2 * (qy * qz + qw * qx), 1 - 2 * (qx * qx + qy * qy),
    ], dim=-1).reshape(-1, 3, 3)
    M = Rw @ (Rq * scales[:, None, :])  # [N, 3, 3]: camera-frame R S
    fx, fy, cx, cy = camera.fx, camera.fy, camera.cx, camera.cy
    tan_x, tan_y = 0.5 * camera.width / fx, 0.5 * camera.height / fy
    lim_xp = (camera.width - (cx + 0.5)) / fx + 0.3 * tan_x
    lim_xn = (cx + 0.5) / fx + 0.3 * tan_x
    lim_yp = (camera.height - (cy + 0.5)) / fy + 0.3 * tan_y
    lim_yn = (cy + 0.5) / fy + 0.3 * tan_y
    zs = torch.where(z.abs() < 1e-6, torch.full_like(z, 1e-6), z)
    tx = zs * (x / zs).clamp(-lim_xn, lim_xp)
    ty = zs * (y / zs).clamp(-lim_yn, lim_yp)
    zero = torch.zeros_like(z)
    J = torch.stack([fx / zs, zero, -fx * tx / (zs * zs), zero, fy / zs, -fy * ty / (zs * zs)], -1).reshape(-1, 2, 3)
    JM = J @ M  # [N, 2, 3]
    cov = JM @ JM.transpose(1, 2)
    a = cov[:, 0, 0] + eps2d
    b = cov[:, 0, 1]
    c = cov[:, 1, 1] + eps2d
    det = a * c - b * b
    det_safe = torch.where(det > 0, det, torch.ones_like(det))
    conic = torch.stack([c / det_safe, -b / det_safe, a / det_safe], -1)
    mean2d = torch.stack([fx * x / zs + cx, fy * y / zs + cy], -1)
    o = opacities.detach()
    ext = torch.sqrt(2.0 * torch.log((o / ALPHA_MIN).clamp_min(1.0))).clamp_max(3.33)
    extent = torch.stack([ext * a.detach().sqrt(), ext * c.detach().sqrt()], -1)
    m2 = mean2d.detach()
    on_image = ((m2[:, 0] + extent[:, 0] >= 0) & (m2[:, 0] - extent[:, 0] <= camera.width - 1)
                & (m2[:, 1] + extent[:, 1] >= 0) & (m2[:, 1] - extent[:, 1] <= camera.height - 1))
    valid = (z >= NEAR) & (z <= FAR) & (det > 0) & (o >= ALPHA_MIN) & on_image
    return {"mean2d": mean2d, "conic": conic, "depth": z, "extent": extent, "valid": valid}


def _composite(m2, cn, dp, op, col, pu, pv, bg):
    """Dense front-to-back compositing of n depth-sorted Gaussians over P pixels (pu, pv [P])."""
    dx = m2[:, 0][:, None] - pu[None, :]  # [n, P]
    dy = m2[:, 1][:, None] - pv[None, :]
    A, B, C = cn[:, 0][:, None], cn[:, 1][:, None], cn[:, 2][:, None]
    sigma = 0.5 * (A * dx * dx + C * dy * dy) + B * dx * dy
    alpha = (op[:, None] * torch.exp(-sigma)).clamp_max(0.999)
    alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))
    next_T = torch.cumprod(1.0 - alpha, dim=0)
    keep = next_T.detach() > T_MIN  # a prefix per pixel (next_T is non-increasing)
    alpha = alpha * keep
    T_excl = torch.cumprod(torch.cat([torch.ones_like(alpha[:1]), 1.0 - alpha[:-1]], 0), dim=0)
    w = alpha * T_excl  # [n, P]
    T_final = T_excl[-1] * (1.0 - alpha[-1])
    img = w.T @ col + T_final[:, None] * bg
    acc_a = 1.0 - T_final
    dep = (w * dp[:, None]).sum(0) / acc_a.clamp_min(1e-10)
    return img, acc_a, dep


def rasterize_torch(mean2d, conic, depth, extent, valid, opacities, colors, camera: Camera, background,
                    block: int = 32):
    """Dense front-to-back compositing. mean2d [N, 2], conic [N, 3], depth [N], extent [N, 2], valid [N],
    opacities [N], colors [N, 3], background [3]. Returns (image [H, W, 3], alpha [H, W], depth [H, W]).
    Works on ``block`` x ``block`` pixel blocks, each with the Gaussians whose box reaches it (the others have
    alpha < 1/255 there, so the result is the same as one dense pass over the whole image)."""
    H, Wd = camera.height, camera.width
    dev, dt = mean2d.device, mean2d.dtype
    idx = torch.nonzero(valid).squeeze(1)
    order = idx[torch.argsort(depth.detach()[idx], stable=True)]
    m2, cn, dp, ex = mean2d[order], conic[order], depth[order], extent[order]
    op, col = opacities[order], colors[order]
    bg = torch.as_tensor(background, dtype=dt, device=dev)
    md = m2.detach()
    lo, hi = md - ex, md + ex  # [n, 2] boxes
    rows = []
    for r0 in range(0, H, block):
        r1 = min(r0 + block, H)
        in_rows = (hi[:, 1] >= r0) & (lo[:, 1] <= r1 - 1)
        cols = []
        for c0 in range(0, Wd, block):
            c1 = min(c0 + block, Wd)
            vs = torch.arange(r0, r1, device=dev, dtype=dt)
            us = torch.arange(c0, c1, device=dev, dtype=dt)
            pv, pu = torch.meshgrid(vs, us, indexing="ij")
            pu, pv = pu.reshape(-1), pv.reshape(-1)
            s = torch.nonzero(in_rows & (hi[:, 0] >= c0) & (lo[:, 0] <= c1 - 1)).squeeze(1)
            if s.numel() == 0:
                img = bg.expand(pu.shape[0], 3)
                acc_a = torch.zeros(pu.shape[0], dtype=dt, device=dev)
                dep = torch.zeros_like(acc_a)
            else:
                img, acc_a, dep = _composite(m2[s], cn[s], dp[s], op[s], col[s], pu, pv, bg)
            cols.append(torch.cat([img, acc_a[:, None], dep[:, None]], -1).reshape(r1 - r0, c1 - c0, 5))
        rows.append(torch.cat(cols, 1))
    out = torch.cat(rows, 0)
    return out[..., :3], out[..., 3], out[..., 4]


def render_torch(means, quats, scales, opacities, colors, camera: Camera, background):
    """Project and rasterise (all torch, differentiable w.r.t. every input tensor). Shapes as above."""
    p = project_torch(means, quats, scales, opacities, camera)
    return rasterize_torch(p["mean2d"], p["conic"], p["depth"], p["extent"], p["valid"], opacities, colors,
                           camera, background)

