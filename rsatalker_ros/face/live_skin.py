"""Posing a head for a live stream: ``HeadModel.from_motion`` for the few frames at a time that a motion node poses
25 times a second.

The numbers are those of ``HeadModel.pose`` (rsatalker_ros.face.lbs: blendshapes, joints, pose correctives,
skinning) to float rounding, with zero shape and no global rotation or translation, as the motion stage poses.
The joints' rotations and forward kinematics ([B, 5, 3, 3]-sized) run as one compiled pass (numba; as ~40 numpy
ops of a microsecond or more each they cost more than the vertex blend). The expression blendshapes and the blend
of the joints' transforms run in one compiled pass over the vertices (``pose_vertices``), 8 vertices at a time:
each block adds only the blendshapes that move one of its vertices (a block-sparse copy of the basis: the ARKit
heads' blendshapes each move a few hundred vertices, so 0.9 of the 3.2 MB dense basis is read per frame, and a
motion node's frames find less of it in cache), then each vertex its joints of non-zero weight. Pose correctives
(FLAME files) are one torch product (MKL, the threads torch was given) added in that pass.

    skin = LiveSkinner(load_head("default_older"))
    verts = skin(motion)            # motion [B, E + 12] float32 in head.layout -> vertices [B, V, 3] float32 metres
"""

from __future__ import annotations

import numba
import numpy as np
import torch

BLOCK = 8           # vertices per block of the block-sparse expression basis (3 x 8 floats: three 8-wide vectors)


class LiveSkinner:
    """Holds float32 numpy copies of one head's skinning data (zero shape folded in). head: HeadModel."""

    def __init__(self, head):
        self.layout = head.layout
        self.parents = list(head.parents)
        V, S, E = head.n_vertices, head.n_shape, head.layout.n_expression
        f32 = lambda t: np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)  # noqa: E731
        # the expression basis in blocks of BLOCK vertices (the last one padded with zeros), each block only with
        # the blendshapes that move one of its vertices: block i's are expr_index / expr_delta [expr_start[i]:
        # expr_start[i + 1]] (blendshape, [3 BLOCK] offsets of its vertices' x, y, z), in blendshape order
        n_blocks = -(-V // BLOCK)
        rest = np.zeros((n_blocks * BLOCK, 3), np.float32)
        rest[:V] = f32(head.v_template)
        self.v_template = rest.reshape(n_blocks, 3 * BLOCK)                            # [n_blocks, 3 BLOCK]
        dirs = np.zeros((n_blocks * BLOCK, 3, E), np.float32)
        dirs[:V] = f32(head._dirs[:, S:S + E]).reshape(V, 3, E)
        dirs = dirs.reshape(n_blocks, 3 * BLOCK, E).transpose(0, 2, 1)                 # [n_blocks, E, 3 BLOCK]
        moves = (dirs != 0).any(2)                                                     # [n_blocks, E]
        self.expr_start = np.concatenate([[0], np.cumsum(moves.sum(1))]).astype(np.int32)  # [n_blocks + 1]
        self.expr_index = np.nonzero(moves)[1].astype(np.int32)                        # [n]
        self.expr_delta = np.ascontiguousarray(dirs[moves])                            # [n, 3 BLOCK]
        self.j_template = f32(head.j_template)                                         # [K, 3]
        self.j_exprdirs = f32(head._jdirs[:, S:S + E]).T.copy()                        # [E, K*3]
        self.posedirs = torch.from_numpy(f32(head.posedirs))                           # [P, V*3] (P = 0: none)
        self.weights = f32(head.weights)                                               # [V, K]
        self.n_vertices, self.n_joints = V, len(self.parents)
        self._eye = np.eye(3, dtype=np.float32)
        self._parents = np.asarray(self.parents, np.int64)
        self._no_pose = np.zeros((1, 0), np.float32)

    def __call__(self, motion: np.ndarray) -> np.ndarray:
        """motion [B, E + 12] (self.layout) -> vertices [B, V, 3] float32, metres, head frame."""
        m = np.asarray(motion, dtype=np.float32)
        lay = self.layout
        if m.ndim != 2 or m.shape[1] != lay.dim:
            raise ValueError(f"motion must be [B, {lay.dim}] ({lay.basis} layout), got {list(m.shape)}")
        B, K = m.shape[0], self.n_joints
        expr = np.ascontiguousarray(m[:, lay.expression])
        joints = (expr @ self.j_exprdirs).reshape(B, K, 3) + self.j_template          # [B, K, 3]
        rotvecs = np.zeros((B, K, 3), np.float32)         # joints: global (no rotation), neck, jaw, left/right eye
        rotvecs[:, 1], rotvecs[:, 2] = m[:, lay.neck], m[:, lay.jaw]
        rotvecs[:, 3:5] = m[:, lay.eyes].reshape(B, 2, 3)
        # local rotations [B, K, 3, 3] and skinning transforms [B, K, 3, 4] in one compiled pass (numpy's ~40
        # small ops on [B, 5, 3, 3] arrays cost more than the [V]-sized blend)
        rot, T = skinning_transforms(rotvecs, np.ascontiguousarray(joints, np.float32), self._parents)
        pose = self._no_pose
        if self.posedirs.shape[0]:
            feat = np.ascontiguousarray((rot[:, 1:] - self._eye).reshape(B, -1))      # [B, 9 (K-1)]
            pose = torch.from_numpy(feat).mm(self.posedirs).numpy()                    # [B, V*3]
        return pose_vertices(expr, self.v_template, self.expr_start, self.expr_index, self.expr_delta, pose,
                             self.weights, T)


@numba.njit(cache=True, nogil=True)
def pose_vertices(expr, v_template, expr_start, expr_index, expr_delta, pose, weights, T):
    """Blendshapes, then linear blend skinning, in one pass over blocks of vertices. expr [B, E] blendshape weights;
    v_template [n_blocks, 3 b] rest positions (x, y, z of b vertices per block, zeros past V); block i moves by
    expr[expr_index[j]] * expr_delta[j] ([3 b]) for j in expr_start[i] .. expr_start[i + 1] - 1 (the blendshapes
    that move one of its vertices, in order; one that does not move a vertex adds 0 to it); pose [B, 3 V]
    pose-corrective offsets or [1, 0] (none); weights [V, K]; T [B, K, 3, 4] (rotation | translation) ->
    [B, V, 3] float32: each posed rest position moved by its weighted sum of the joints' transforms (summed over
    its joints of non-zero weight: most vertices follow one or two of them, and adding 0 w T changes nothing)."""
    B = expr.shape[0]
    V, K = weights.shape
    n_blocks, width = v_template.shape
    out = np.empty((B, V, 3), np.float32)
    rest = np.empty(width, np.float32)
    with_pose = pose.shape[1] > 0
    for b in range(B):
        Tb = T[b]
        eb = expr[b]
        for blk in range(n_blocks):
            rest[:] = v_template[blk]
            for j in range(expr_start[blk], expr_start[blk + 1]):
                w = eb[expr_index[j]]
                for c in range(width):
                    rest[c] += w * expr_delta[j, c]
            v0 = blk * (width // 3)
            for i in range(min(width // 3, V - v0)):
                v = v0 + i
                x, y, z = rest[3 * i], rest[3 * i + 1], rest[3 * i + 2]
                if with_pose:
                    x += pose[b, 3 * v]
                    y += pose[b, 3 * v + 1]
                    z += pose[b, 3 * v + 2]
                a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = c0 = c1 = c2 = c3 = np.float32(0.0)
                for k in range(K):
                    w = weights[v, k]
                    if w != 0:
                        a0 += w * Tb[k, 0, 0]
                        a1 += w * Tb[k, 0, 1]
                        a2 += w * Tb[k, 0, 2]
                        a3 += w * Tb[k, 0, 3]
                        b0 += w * Tb[k, 1, 0]
                        b1 += w * Tb[k, 1, 1]
                        b2 += w * Tb[k, 1, 2]
                        b3 += w * Tb[k, 1, 3]
                        c0 += w * Tb[k, 2, 0]
                        c1 += w * Tb[k, 2, 1]
                        c2 += w * Tb[k, 2, 2]
                        c3 += w * Tb[k, 2, 3]
                out[b, v, 0] = a3 + a0 * x + a1 * y + a2 * z
                out[b, v, 1] = b3 + b0 * x + b1 * y + b2 * z
                out[b, v, 2] = c3 + c0 * x + c1 * y + c2 * z
    return out


@numba.njit(cache=True, nogil=True)
def skinning_transforms(rotvecs, joints, parents):
    """rotvecs [B, K, 3] float32 local axis-angles [rad], joints [B, K, 3] float32 rest positions, parents [K] int64
    (-1: root; each parent before its children) -> (local rotations [B, K, 3, 3], skinning transforms
    [B, K, 3, 4]: [R_k | t_k - R_k J_k], rest point -> posed point for joint k). lbs.axis_angle_to_matrix (the
    same Taylor terms below 1e-4 rad) and lbs.joint_transforms in float32, compiled."""
    B, K, _ = rotvecs.shape
    rot = np.empty((B, K, 3, 3), np.float32)
    wr = np.empty((K, 3, 3), np.float32)
    wt = np.empty((K, 3), np.float32)
    T = np.empty((B, K, 3, 4), np.float32)
    S, S2 = np.empty((3, 3), np.float32), np.empty((3, 3), np.float32)
    for bi in range(B):
        for k in range(K):
            x, y, z = rotvecs[bi, k, 0], rotvecs[bi, k, 1], rotvecs[bi, k, 2]
            theta2 = x * x + y * y + z * z
            if theta2 < np.float32(1e-8):                 # the Taylor terms of sin and cos below 1e-4 rad
                a = np.float32(1.0) - theta2 / np.float32(6.0)
                b = np.float32(0.5) - theta2 / np.float32(24.0)
            else:
                theta = np.sqrt(theta2)
                a = np.sin(theta) / theta
                b = (np.float32(1.0) - np.cos(theta)) / theta2
            S[0, 0], S[0, 1], S[0, 2] = 0.0, -z, y
            S[1, 0], S[1, 1], S[1, 2] = z, 0.0, -x
            S[2, 0], S[2, 1], S[2, 2] = -y, x, 0.0
            for i in range(3):
                for j in range(3):
                    S2[i, j] = S[i, 0] * S[0, j] + S[i, 1] * S[1, j] + S[i, 2] * S[2, j]
            for i in range(3):
                for j in range(3):
                    rot[bi, k, i, j] = (np.float32(1.0) if i == j else np.float32(0.0)) + a * S[i, j] + b * S2[i, j]
        for k in range(K):                                  # forward kinematics
            p = parents[k]
            if p < 0:
                wr[k] = rot[bi, k]
                wt[k] = joints[bi, k]
            else:
                for i in range(3):
                    for j in range(3):
                        wr[k, i, j] = wr[p, i, 0] * rot[bi, k, 0, j] + wr[p, i, 1] * rot[bi, k, 1, j] + \
                            wr[p, i, 2] * rot[bi, k, 2, j]
                d0 = joints[bi, k, 0] - joints[bi, p, 0]
                d1 = joints[bi, k, 1] - joints[bi, p, 1]
                d2 = joints[bi, k, 2] - joints[bi, p, 2]
                for i in range(3):
                    wt[k, i] = wt[p, i] + (wr[p, i, 0] * d0 + wr[p, i, 1] * d1 + wr[p, i, 2] * d2)
            for i in range(3):
                for j in range(3):
                    T[bi, k, i, j] = wr[k, i, j]
                T[bi, k, i, 3] = wt[k, i] - (wr[k, i, 0] * joints[bi, k, 0] + wr[k, i, 1] * joints[bi, k, 1] +
                                              wr[k, i, 2] * joints[bi, k, 2])
    return rot, T


def compile_kernels() -> None:
    """Compile (or load from numba's on-disk cache) this module's kernels on a tiny input."""
    zeros = lambda *shape: np.zeros(shape, np.float32)  # noqa: E731
    rot, T = skinning_transforms(zeros(1, 1, 3), zeros(1, 1, 3), np.full(1, -1, np.int64))
    start = np.zeros(2, np.int32)
    pose_vertices(zeros(1, 1), zeros(1, 3), start, start[:0], zeros(0, 3), zeros(1, 0), zeros(1, 1), T)
