"""Triangle frames and the GaussianAvatars binding (DESIGN.md section 3), in torch and in numba.

Per triangle (v0, v1, v2):
    T  = mean(v0, v1, v2)                       origin
    a0 = norm(v1 - v0)                          along the first edge
    a1 = norm(a0 x (v2 - v0))                   the face normal
    a2 = -norm(a1 x a0)  (= a0 x a1)            in the plane; [a0 a1 a2] is right-handed
    R  = [a0 a1 a2] (columns)
    k  = (|v1 - v0| + |a2 . (v2 - v0)|) / 2     scale (mean of the triangle's base and height)
A Gaussian with local (mu, s, q) bound to that triangle renders at
    mu_world = k R mu + T,   s_world = exp(s) k,   q_world = q_face (x) q   (quaternions wxyz, Hamilton product)

The torch functions are differentiable (training); ``bind_arrays`` is the numba path for the live renderer, and
``bind_fused`` the torch path for it (CPU or GPU: a handful of whole-tensor ops per frame, batched over meshes).
"""

import numba
import numpy as np
import torch

_EPS = 1e-12


def _normalize(x: torch.Tensor) -> torch.Tensor:
    """x [..., 3] -> unit vectors [..., 3] (zero vectors stay finite)."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(_EPS)


def triangle_frames(vertices: torch.Tensor, faces: torch.Tensor):
    """Frames of all triangles.

    vertices: [..., V, 3] float, faces: [F, 3] long.
    Returns (R [..., F, 3, 3] rotation with columns a0 a1 a2, k [..., F] scale, T [..., F, 3] centroid).
    """
    v0 = vertices[..., faces[:, 0], :]
    v1 = vertices[..., faces[:, 1], :]
    v2 = vertices[..., faces[:, 2], :]
    e1 = v1 - v0
    e2 = v2 - v0
    a0 = _normalize(e1)
    a1 = _normalize(torch.cross(a0, e2, dim=-1))
    a2 = -_normalize(torch.cross(a1, a0, dim=-1))
    R = torch.stack([a0, a1, a2], dim=-1)
    k = 0.5 * (e1.norm(dim=-1) + (a2 * e2).sum(-1).abs())
    T = (v0 + v1 + v2) / 3.0
    return R, k, T


def quat_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product a (x) b of wxyz quaternions; a, b [..., 4] -> [..., 4]."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], dim=-1)


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """wxyz quaternions [..., 4] (normalised here) -> rotation matrices [..., 3, 3]."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(q.shape[:-1] + (3, 3))


# Shepperd's method in matrix form: row i of the symmetric matrix K(R) = 4 |q_i| q (components wxyz), whose
# diagonal holds 4 q_i^2 = 1 +- m00 +- m11 +- m22; the row with the largest diagonal is the well-conditioned one.
# K(R) = 1 * _K_CONST + R.flatten() @ _K_LIN, so the whole conversion is a handful of tensor ops.
_K_LIN = torch.zeros(9, 4, 4)
for (_i, _j), _terms in {
    (0, 0): ((0, 1), (4, 1), (8, 1)), (1, 1): ((0, 1), (4, -1), (8, -1)),
    (2, 2): ((0, -1), (4, 1), (8, -1)), (3, 3): ((0, -1), (4, -1), (8, 1)),
    (0, 1): ((7, 1), (5, -1)), (0, 2): ((2, 1), (6, -1)), (0, 3): ((3, 1), (1, -1)),
    (1, 2): ((3, 1), (1, 1)), (1, 3): ((2, 1), (6, 1)), (2, 3): ((7, 1), (5, 1)),
}.items():
    for _m, _sign in _terms:  # flat index m = 3 row + column of R
        _K_LIN[_m, _i, _j] = _K_LIN[_m, _j, _i] = _sign
_K_LIN = _K_LIN.reshape(9, 16)
_K_CONST = torch.eye(4).reshape(16)


_K_ON = {}  # (device, dtype) -> the two constants there, copied once


def shepperd_constants(device, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """(k_lin [9, 16], k_const [16]) of ``matrix_to_quat`` on ``device`` (copied there once, then cached)."""
    key = (torch.device(device), dtype)
    if key not in _K_ON:
        _K_ON[key] = (_K_LIN.to(device, dtype), _K_CONST.to(device, dtype))
    return _K_ON[key]


def matrix_to_quat(R: torch.Tensor, k_lin: torch.Tensor | None = None,
                   k_const: torch.Tensor | None = None) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] -> unit wxyz quaternions [..., 4] with w >= 0 (Shepperd's method).

    k_lin [9, 16], k_const [16]: the constants ``shepperd_constants(device)`` already on R's device (else copied
    there on every call)."""
    if k_lin is None:
        k_lin, k_const = shepperd_constants(R.device, R.dtype)
    K = (R.flatten(-2) @ k_lin + k_const).unflatten(-1, (4, 4))
    best = K.diagonal(dim1=-2, dim2=-1).argmax(dim=-1)
    q = torch.gather(K, -2, best[..., None, None].expand(best.shape + (1, 4))).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    return torch.where(q[..., :1] < 0, -q, q)


def bind_tensors(vertices, faces, parent, means, log_scales, quats):
    """Local Gaussians -> world Gaussians (differentiable).

    vertices [..., V, 3], faces [F, 3] long, parent [N] long, means [N, 3], log_scales [N, 3], quats [N, 4] wxyz.
    Returns (means [..., N, 3], scales [..., N, 3], quats [..., N, 4] unit wxyz).
    """
    R, k, T = triangle_frames(vertices, faces)
    q_face = matrix_to_quat(R)[..., parent, :]  # per triangle, then gathered: F conversions instead of N
    R, k, T = R[..., parent, :, :], k[..., parent], T[..., parent, :]
    world_means = k[..., None] * (R @ means[..., None]).squeeze(-1) + T
    world_scales = log_scales.exp() * k[..., None]
    q_local = quats / quats.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    world_quats = quat_multiply(q_face, q_local)
    return world_means, world_scales, world_quats


# --------------------------------------------------------------------------------------------------------------
# fused torch path for the live renderer (no gradients needed; same formulas as bind_tensors)


def quat_right_matrix(q: torch.Tensor) -> torch.Tensor:
    """Unit wxyz quaternions q [..., 4] -> M [..., 4, 4] with p (x) q = p @ M for any p [..., 4] (row vector)."""
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        w, x, y, z,
        -x, w, -z, y,
        -y, z, w, -x,
        -z, -y, x, w,
    ], dim=-1).reshape(q.shape[:-1] + (4, 4))


def bind_constants(means: torch.Tensor, log_scales: torch.Tensor, quats: torch.Tensor):
    """Per-avatar constants of ``bind_fused``, computed once: means [N,3], log_scales [N,3], quats [N,4] wxyz ->
    (means_h [N, 4] = [mu, 1], scales_local [N, 3] = exp(log_scales), quat_right [N, 4, 4] of the unit quats,
    k_lin [9, 16], k_const [16] for the triangles' quaternions), all on the inputs' device."""
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    means_h = torch.cat([means, torch.ones_like(means[:, :1])], dim=1)
    return (means_h.contiguous(), log_scales.exp().contiguous(), quat_right_matrix(q).contiguous(),
            *shepperd_constants(means.device, means.dtype))


def face_pack(vertices: torch.Tensor, faces_flat: torch.Tensor, k_lin: torch.Tensor,
              k_const: torch.Tensor) -> torch.Tensor:
    """Everything a Gaussian needs from its triangle, one row per triangle.

    vertices [..., V, 3], faces_flat [3F] long (faces.reshape(-1)), k_lin/k_const from ``shepperd_constants``
    -> [..., F, 17]: the affine map [k R | T] row-major (12), k (1) and the frame's unit quaternion wxyz (4)."""
    v = vertices.index_select(-2, faces_flat).unflatten(-2, (-1, 3))  # [..., F, 3 corners, 3]
    v0, v1, v2 = v.unbind(-2)
    e1, e2 = v1 - v0, v2 - v0
    l1 = e1.norm(dim=-1, keepdim=True)
    a0 = e1 / l1.clamp_min(_EPS)
    a1 = _normalize(torch.linalg.cross(a0, e2, dim=-1))
    a2 = _normalize(torch.linalg.cross(a0, a1, dim=-1))  # = -norm(a1 x a0)
    k = 0.5 * (l1 + (a2 * e2).sum(-1, keepdim=True).abs())
    T = (v0 + v1 + v2) / 3.0
    R = torch.stack([a0, a1, a2], dim=-1)  # columns a0 a1 a2
    affine = torch.cat([k[..., None] * R, T[..., None]], dim=-1)  # [..., F, 3, 4]
    return torch.cat([affine.flatten(-2), k, matrix_to_quat(R, k_lin, k_const)], dim=-1)


def bind_fused(vertices: torch.Tensor, faces_flat: torch.Tensor, parent: torch.Tensor, means_h: torch.Tensor,
               scales_local: torch.Tensor, quat_right: torch.Tensor, k_lin: torch.Tensor, k_const: torch.Tensor):
    """``bind_tensors`` as a few whole-tensor ops (one gather per mesh and one per Gaussian, three contractions);
    the per-avatar inputs come from ``bind_constants``.

    vertices [..., V, 3], faces_flat [3F] long, parent [N] long, means_h [N, 4], scales_local [N, 3],
    quat_right [N, 4, 4], k_lin [9, 16], k_const [16] -> (means [..., N, 3], scales [..., N, 3], quats [..., N, 4]
    unit wxyz)."""
    g = face_pack(vertices, faces_flat, k_lin, k_const).index_select(-2, parent)  # [..., N, 17]
    affine = g[..., :12].unflatten(-1, (3, 4))
    means = (affine @ means_h[..., None]).squeeze(-1)
    scales = g[..., 12:13] * scales_local
    quats = (g[..., None, 13:17] @ quat_right).squeeze(-2)
    return means, scales, quats


# --------------------------------------------------------------------------------------------------------------
# numba path (float32, single thread: ~1 ms for 20k Gaussians, cheaper than a parallel region) for the live renderer.
# Every constant is float32: a float64 literal (1.0, 1e-12) turned the frame's arithmetic into float64 with
# conversions (its sqrt and divisions ~3x slower; the results differed from these by a few float32 ulps).
_ONE, _TINY, _HALF, _QUARTER, _TWO, _THREE = (np.float32(x) for x in (1.0, 1e-12, 0.5, 0.25, 2.0, 3.0))


@numba.njit(cache=True, fastmath=True, nogil=True)
def _face_frames_nb(vertices, faces, R, kT, q):
    """Per triangle f: R[f] [3, 3] its frame (columns a0 a1 a2), kT[f] = (k, T), q[f] the frame's unit quaternion
    wxyz with w >= 0 (Shepperd's method, as matrix_to_quat). One loop, written out (no per-triangle array views)."""
    for f in range(faces.shape[0]):
        i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
        e1x = vertices[i1, 0] - vertices[i0, 0]
        e1y = vertices[i1, 1] - vertices[i0, 1]
        e1z = vertices[i1, 2] - vertices[i0, 2]
        e2x = vertices[i2, 0] - vertices[i0, 0]
        e2y = vertices[i2, 1] - vertices[i0, 1]
        e2z = vertices[i2, 2] - vertices[i0, 2]
        l1 = np.sqrt(e1x * e1x + e1y * e1y + e1z * e1z)
        inv = _ONE / max(l1, _TINY)
        a0x, a0y, a0z = e1x * inv, e1y * inv, e1z * inv
        nx = a0y * e2z - a0z * e2y
        ny = a0z * e2x - a0x * e2z
        nz = a0x * e2y - a0y * e2x
        inv = _ONE / max(np.sqrt(nx * nx + ny * ny + nz * nz), _TINY)
        a1x, a1y, a1z = nx * inv, ny * inv, nz * inv
        # a2 = -(a1 x a0) = a0 x a1 (unit already, a0 and a1 are orthonormal)
        a2x = a0y * a1z - a0z * a1y
        a2y = a0z * a1x - a0x * a1z
        a2z = a0x * a1y - a0y * a1x
        inv = _ONE / max(np.sqrt(a2x * a2x + a2y * a2y + a2z * a2z), _TINY)
        a2x, a2y, a2z = a2x * inv, a2y * inv, a2z * inv
        R[f, 0, 0], R[f, 1, 0], R[f, 2, 0] = a0x, a0y, a0z
        R[f, 0, 1], R[f, 1, 1], R[f, 2, 1] = a1x, a1y, a1z
        R[f, 0, 2], R[f, 1, 2], R[f, 2, 2] = a2x, a2y, a2z
        kT[f, 0] = _HALF * (l1 + abs(a2x * e2x + a2y * e2y + a2z * e2z))
        kT[f, 1] = (vertices[i0, 0] + vertices[i1, 0] + vertices[i2, 0]) / _THREE
        kT[f, 2] = (vertices[i0, 1] + vertices[i1, 1] + vertices[i2, 1]) / _THREE
        kT[f, 3] = (vertices[i0, 2] + vertices[i1, 2] + vertices[i2, 2]) / _THREE
        # R = [[m00 m01 m02], [m10 m11 m12], [m20 m21 m22]] -> quaternion
        m00, m01, m02, m10, m11, m12, m20, m21, m22 = a0x, a1x, a2x, a0y, a1y, a2y, a0z, a1z, a2z
        tr = m00 + m11 + m22
        if tr > 0:
            s = np.sqrt(tr + _ONE) * _TWO
            w, x, y, z = _QUARTER * s, (m21 - m12) / s, (m02 - m20) / s, (m10 - m01) / s
        elif m00 > m11 and m00 > m22:
            s = np.sqrt(_ONE + m00 - m11 - m22) * _TWO
            w, x, y, z = (m21 - m12) / s, _QUARTER * s, (m01 + m10) / s, (m02 + m20) / s
        elif m11 > m22:
            s = np.sqrt(_ONE + m11 - m00 - m22) * _TWO
            w, x, y, z = (m02 - m20) / s, (m01 + m10) / s, _QUARTER * s, (m12 + m21) / s
        else:
            s = np.sqrt(_ONE + m22 - m00 - m11) * _TWO
            w, x, y, z = (m10 - m01) / s, (m02 + m20) / s, (m12 + m21) / s, _QUARTER * s
        if w < 0:  # same convention as matrix_to_quat: w >= 0
            w, x, y, z = -w, -x, -y, -z
        q[f, 0], q[f, 1], q[f, 2], q[f, 3] = w, x, y, z


@numba.njit(cache=True, fastmath=True, nogil=True)
def _bind_nb(R, kT, qf, parent, means, scales_local, quats_local, out_means, out_scales, out_quats):
    for i in range(parent.shape[0]):
        f = parent[i]
        k = kT[f, 0]
        mx, my, mz = means[i, 0], means[i, 1], means[i, 2]
        for r in range(3):
            out_means[i, r] = k * (R[f, r, 0] * mx + R[f, r, 1] * my + R[f, r, 2] * mz) + kT[f, 1 + r]
            out_scales[i, r] = scales_local[i, r] * k
        aw, ax, ay, az = qf[f, 0], qf[f, 1], qf[f, 2], qf[f, 3]
        bw, bx, by, bz = quats_local[i, 0], quats_local[i, 1], quats_local[i, 2], quats_local[i, 3]
        out_quats[i, 0] = aw * bw - ax * bx - ay * by - az * bz
        out_quats[i, 1] = aw * bx + ax * bw + ay * bz - az * by
        out_quats[i, 2] = aw * by - ax * bz + ay * bw + az * bx
        out_quats[i, 3] = aw * bz + ax * by - ay * bx + az * bw


def bind_arrays(vertices: np.ndarray, faces: np.ndarray, parent: np.ndarray, means: np.ndarray,
                scales_local: np.ndarray, quats_local_unit: np.ndarray):
    """numba binding for one mesh (no gradients).

    vertices [V, 3] float32, faces [F, 3] int32/int64, parent [N] int, means [N, 3] float32 local,
    scales_local [N, 3] float32 = exp(log_scales), quats_local_unit [N, 4] float32 unit wxyz.
    Returns float32 (means [N, 3], scales [N, 3], quats [N, 4]).
    """
    vertices = np.ascontiguousarray(vertices, dtype=np.float32)
    F = faces.shape[0]
    R = np.empty((F, 3, 3), np.float32)
    kT = np.empty((F, 4), np.float32)
    qf = np.empty((F, 4), np.float32)
    _face_frames_nb(vertices, faces, R, kT, qf)
    N = parent.shape[0]
    out_m = np.empty((N, 3), np.float32)
    out_s = np.empty((N, 3), np.float32)
    out_q = np.empty((N, 4), np.float32)
    _bind_nb(R, kT, qf, parent, means, scales_local, quats_local_unit, out_m, out_s, out_q)
    return out_m, out_s, out_q
