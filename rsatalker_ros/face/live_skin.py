"""Posing a head for a live stream: ``HeadModel.from_motion`` for the few frames at a time that a motion node poses
25 times a second.

The numbers are those of ``HeadModel.pose`` (rsatalker_ros.face.lbs: blendshapes, joints, pose correctives,
skinning) to float rounding, with zero shape and no global rotation or translation, as the motion stage poses.
The joints' rotations and forward kinematics ([B, 5, 3, 3]-sized) run in numpy, where a small op costs a
microsecond instead of torch's several; the blendshape products run in torch (MKL, the threads torch was given:
numpy's OpenBLAS spreads a [1, 52] x [52, 13614] product over every core and spins on a busy machine), the
blend of the joints' transforms per vertex in one compiled pass (numba; numpy took a [V, 5] x [5, 12] product and
six [V, 3] passes).

    skin = LiveSkinner(load_head("default_older"))
    verts = skin(motion)            # motion [B, E + 12] float32 in head.layout -> vertices [B, V, 3] float32 metres
"""

from __future__ import annotations

import numba
import numpy as np
import torch


class LiveSkinner:
    """Holds float32 numpy copies of one head's skinning data (zero shape folded in). head: HeadModel."""

    def __init__(self, head):
        self.layout = head.layout
        self.parents = list(head.parents)
        V, S, E = head.n_vertices, head.n_shape, head.layout.n_expression
        f32 = lambda t: np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)  # noqa: E731
        self.v_template = torch.from_numpy(f32(head.v_template).reshape(1, V * 3))  # [1, V*3]
        self.exprdirs = torch.from_numpy(f32(head._dirs[:, S:S + E]).T.copy())      # [E, V*3]
        self.j_template = f32(head.j_template)                                       # [K, 3]
        self.j_exprdirs = f32(head._jdirs[:, S:S + E]).T.copy()                      # [E, K*3]
        self.posedirs = torch.from_numpy(f32(head.posedirs))                         # [P, V*3] (P = 0: none)
        self.weights = f32(head.weights)                                             # [V, K]
        self.n_vertices, self.n_joints = V, len(self.parents)
        self._eye = np.eye(3, dtype=np.float32)

    def __call__(self, motion: np.ndarray) -> np.ndarray:
        """motion [B, E + 12] (self.layout) -> vertices [B, V, 3] float32, metres, head frame."""
        m = np.asarray(motion, dtype=np.float32)
        lay = self.layout
        if m.ndim != 2 or m.shape[1] != lay.dim:
            raise ValueError(f"motion must be [B, {lay.dim}] ({lay.basis} layout), got {list(m.shape)}")
        B, V, K = m.shape[0], self.n_vertices, self.n_joints
        expr = np.ascontiguousarray(m[:, lay.expression])
        verts = torch.addmm(self.v_template, torch.from_numpy(expr), self.exprdirs)  # [B, V*3]
        joints = (expr @ self.j_exprdirs).reshape(B, K, 3) + self.j_template          # [B, K, 3]
        rotvecs = np.zeros((B, K, 3), np.float32)         # joints: global (no rotation), neck, jaw, left/right eye
        rotvecs[:, 1], rotvecs[:, 2] = m[:, lay.neck], m[:, lay.jaw]
        rotvecs[:, 3:5] = m[:, lay.eyes].reshape(B, 2, 3)
        rot = axis_angle_to_matrix(rotvecs)                                           # [B, K, 3, 3]
        if self.posedirs.shape[0]:
            feat = np.ascontiguousarray((rot[:, 1:] - self._eye).reshape(B, -1))      # [B, 9 (K-1)]
            verts = verts.addmm(torch.from_numpy(feat), self.posedirs)
        verts = verts.numpy().reshape(B, V, 3)
        world_r, world_t = joint_world(rot, joints, self.parents)                   # [B, K, 3, 3], [B, K, 3]
        # skinning transforms (rest point -> posed point for joint k): [R_k | t_k - R_k J_k], blended per vertex
        T = np.concatenate([world_r, (world_t - (world_r @ joints[..., None])[..., 0])[..., None]], -1)
        return blend_transforms(verts, self.weights, np.ascontiguousarray(T, np.float32))


@numba.njit(cache=True, nogil=True)
def blend_transforms(verts, weights, T):
    """Linear blend skinning: each vertex moved by its weighted sum of the joints' transforms. verts [B, V, 3]
    rest positions, weights [V, K], T [B, K, 3, 4] (rotation | translation) -> [B, V, 3] float32, in one pass
    over the vertices."""
    B, V, _ = verts.shape
    K = weights.shape[1]
    out = np.empty((B, V, 3), np.float32)
    for b in range(B):
        Tb = T[b]
        for v in range(V):
            x, y, z = verts[b, v, 0], verts[b, v, 1], verts[b, v, 2]
            for r in range(3):
                m0 = m1 = m2 = m3 = np.float32(0.0)
                for k in range(K):
                    w = weights[v, k]
                    m0 += w * Tb[k, r, 0]
                    m1 += w * Tb[k, r, 1]
                    m2 += w * Tb[k, r, 2]
                    m3 += w * Tb[k, r, 3]
                out[b, v, r] = m3 + m0 * x + m1 * y + m2 * z
    return out


def axis_angle_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """rotvec [..., 3] float32 (radians) -> rotation matrices [..., 3, 3]; lbs.axis_angle_to_matrix in numpy
    (the same Taylor terms below 1e-4 rad)."""
    theta2 = (rotvec * rotvec).sum(-1)[..., None, None]                               # [..., 1, 1]
    theta = np.sqrt(np.maximum(theta2, np.float32(1e-12)))
    small = theta2 < 1e-8
    a = np.where(small, 1.0 - theta2 / 6.0, np.sin(theta) / theta).astype(np.float32)
    b = np.where(small, 0.5 - theta2 / 24.0, (1.0 - np.cos(theta)) / np.maximum(theta2, np.float32(1e-12)))
    x, y, z = rotvec[..., 0], rotvec[..., 1], rotvec[..., 2]
    skew = np.zeros(rotvec.shape[:-1] + (3, 3), np.float32)
    skew[..., 0, 1], skew[..., 0, 2], skew[..., 1, 2] = -z, y, -x
    skew[..., 1, 0], skew[..., 2, 0], skew[..., 2, 1] = z, -y, x
    return np.eye(3, dtype=np.float32) + a * skew + b.astype(np.float32) * (skew @ skew)


def joint_world(rot: np.ndarray, joints: np.ndarray, parents: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Forward kinematics (lbs.joint_transforms): rot [B, K, 3, 3] local rotations, joints [B, K, 3] rest
    positions -> (world rotations [B, K, 3, 3], posed joint positions [B, K, 3])."""
    world_r, world_t = np.empty_like(rot), np.empty_like(joints)
    for k, p in enumerate(parents):
        if p < 0:
            world_r[:, k], world_t[:, k] = rot[:, k], joints[:, k]
        else:
            world_r[:, k] = world_r[:, p] @ rot[:, k]
            world_t[:, k] = world_t[:, p] + (world_r[:, p] @ (joints[:, k] - joints[:, p])[..., None])[..., 0]
    return world_r, world_t
