"""Linear blend skinning shared by every head (FLAME files and the baked default heads).

A head in compact form (see ``head_data.HeadData``) is posed in four steps, FLAME style:

1. blendshapes:  v = v_template + shapedirs · shape + exprdirs · expression                 [B, V, 3]
2. joints:       J = J_template + J_shapedirs · shape + J_exprdirs · expression             [B, K, 3]
   (for FLAME this equals J_regressor applied to the blended vertices, pre-multiplied once)
3. pose correctives (FLAME only): v += posedirs · vec(R_k − I for k ≥ 1)
4. skinning:     v' = Σ_k w_k (G_k · v) + translation, G_k = world transform of joint k relative to rest.

Joints have identity rest orientation, so every axis-angle is expressed in the head frame
(x: the head's own left, i.e. the viewer's right when facing it; y up; z out of the face; metres).
"""

import torch


def axis_angle_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula. rotvec [..., 3] (radians, axis × angle) -> rotation matrices [..., 3, 3].

    Differentiable, and exact near zero (uses the Taylor series of sin/cos terms for tiny angles).
    """
    theta2 = (rotvec * rotvec).sum(-1, keepdim=True)[..., None]            # [..., 1, 1]
    theta = theta2.clamp_min(1e-12).sqrt()
    small = theta2 < 1e-8
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta2.clamp_min(1e-12))
    x, y, z = rotvec.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*rotvec.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device).expand_as(skew)
    return eye + a * skew + b * (skew @ skew)


def blend(base: torch.Tensor, dirs_flat: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """base [N, 3] + dirs · coeffs -> [B, N, 3]; dirs_flat is the direction tensor [N, 3, C] reshaped to [N*3, C]
    (a single GEMM; returns base broadcast when C == 0)."""
    if dirs_flat.shape[-1] == 0:
        return base.expand(coeffs.shape[0], -1, -1)
    return base + torch.nn.functional.linear(coeffs, dirs_flat).view(coeffs.shape[0], -1, 3)


def joint_transforms(rot: torch.Tensor, joints: torch.Tensor, parents: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward kinematics.

    rot [B, K, 3, 3] local rotations, joints [B, K, 3] rest joint positions, parents: K ints (-1 for the root,
    each parent before its children). Returns (posed joint positions [B, K, 3], skinning transforms [B, K, 3, 4]
    mapping a rest-pose point to its posed position for a vertex rigidly bound to joint k).
    """
    world_r, world_t = [], []
    for k, p in enumerate(parents):
        if p < 0:
            world_r.append(rot[:, k])
            world_t.append(joints[:, k])
        else:
            world_r.append(world_r[p] @ rot[:, k])
            offset = (joints[:, k] - joints[:, p]).unsqueeze(-1)
            world_t.append(world_t[p] + (world_r[p] @ offset).squeeze(-1))
    r = torch.stack(world_r, 1)                                               # [B, K, 3, 3]
    t = torch.stack(world_t, 1)                                               # [B, K, 3]  posed joints
    skin_t = t - (r @ joints.unsqueeze(-1)).squeeze(-1)
    return t, torch.cat([r, skin_t.unsqueeze(-1)], dim=-1)


def skin(vertices: torch.Tensor, weights: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """vertices [B, V, 3], weights [V, K], transforms [B, K, 3, 4] -> skinned vertices [B, V, 3]."""
    b, k = transforms.shape[:2]
    m = (weights @ transforms.reshape(b, k, 12)).view(b, -1, 3, 4)                 # [B, V, 3, 4]
    x, y, z = vertices[..., 0:1], vertices[..., 1:2], vertices[..., 2:3]
    return torch.addcmul(m[..., 3], m[..., 0], x).addcmul_(m[..., 1], y).addcmul_(m[..., 2], z)
