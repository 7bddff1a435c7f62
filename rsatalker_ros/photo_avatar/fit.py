"""Fit an anny head to the 68 landmarks of one photo: phenotype (age, gender, muscle, weight, height,
proportions), the face's local shape changes (MakeHuman's cheek, chin, brow, eye, forehead, head, mouth and nose
modifiers), the 52 ARKit facial actions (expression), the head pose and the camera's focal length.

Model (all differentiable through anny, CPU float32):
    vertices   = anny(phenotype, local changes, facial actions), moved into the head frame (face_bake.ANNY_TO_HEAD,
                 origin on the head joint, as the baked default heads)
    landmark_i = the anchor point of landmark i on that mesh (``correspondence.LandmarkAnchors``)
    pixel_i    = K (R landmark_i + t)   (OpenCV pinhole, principal point at the image centre, fx = fy = f)
Loss: sum_i w_i |pixel_i - detected_i|^2 / (sum w) / IOD^2 (IOD = the photo's inter-ocular distance in pixels)
      + lambda_shape |local changes|^2 + lambda_expression |facial actions|_1 + lambda_focal (log f/f0)^2.
Two stages with Adam: pose and focal length on the starting shape, then everything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from rsatalker_ros.face.anny_bake import ANNY_TO_HEAD
from rsatalker_ros.face.arkit import ARKIT52_NAMES
from rsatalker_ros.face.lbs import axis_angle_to_matrix
from rsatalker_ros.photo_avatar.detect import EYE_L_IMG, EYE_R_IMG, FaceDetection

# anny's local changes that shape the face (left/right pairs included); ears and neck are not seen by landmarks
FACE_CHANGE_PREFIXES = ("cheek", "chin", "eyebrows", "eye-", "forehead", "head-", "mouth", "nose")
# facial actions left out of the fit: gaze and tongue do not move the 68 landmarks
FROZEN_ACTIONS = ("eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
                  "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "tongueOut")
OPENCV_FROM_HEAD = np.diag([1.0, -1.0, -1.0])   # a head facing the camera: head x -> image right, y up -> down


@dataclass
class FitConfig:
    pose_steps: int = 150            # Adam steps on pose and focal length only
    steps: int = 300                 # Adam steps on everything
    lr: float = 0.03                 # Adam learning rate (all parameters are O(1))
    lambda_shape: float = 5e-5       # L2 weight of the local shape changes (each in -1..1)
    lambda_phenotype: float = 1e-4   # L2 weight of the phenotype's distance from its start
    lambda_expression: float = 5e-5  # L1 weight of the facial actions (each in 0..1)
    lambda_focal: float = 1e-3       # weight of (log f / f0)^2
    focal_over_size: float = 1.6     # f0 = this x the photo's longer side (a portrait lens, ~35 degrees)
    start_phenotype: dict = field(default_factory=lambda: {"age": 0.7, "gender": 0.5, "muscle": 0.5,
                                                           "weight": 0.5, "height": 0.5, "proportions": 0.5})


@dataclass
class HeadFit:
    """The fitted head: phenotype {name: 0..1}, local_changes {name: -1..1}, expression [52] (ARKit order), the
    photo camera (world_to_cam [4, 4] with the head frame as world, focal px, principal point), the landmark
    projections [68, 2] and errors."""
    phenotype: dict
    local_changes: dict
    expression: np.ndarray
    world_to_cam: np.ndarray
    focal: float
    principal: tuple
    projected: np.ndarray
    error_px: float
    error_iod: float
    history: list


def face_change_labels(model) -> list[str]:
    """anny's local-change labels that shape the face."""
    out = []
    for name in model.local_change_labels:
        base = name[2:] if name[:2] in ("l-", "r-") else name
        if base.startswith(FACE_CHANGE_PREFIXES):
            out.append(name)
    return out


def build_face_model():
    """anny's head with the 52 facial actions and the face's local changes (plain torch LBS, CPU)."""
    import anny
    model = anny.Anny(rig="makehuman-head", topology="head", facial_actions="all", skinning_method="lbs",
                      local_changes="all")
    return model


class AnnyFace(torch.nn.Module):
    """anny head -> vertices [V, 3] in the head frame, from bounded parameters."""

    def __init__(self, model, start_phenotype: dict):
        super().__init__()
        self.model = model
        self.pheno_labels = list(model.phenotype_labels)
        self.change_labels = face_change_labels(model)
        self.change_index = torch.tensor([model.local_change_labels.index(n) for n in self.change_labels])
        self.n_changes_all = len(model.local_change_labels)
        self.action_labels = list(model.facial_action_labels)
        fit_actions = [n for n in ARKIT52_NAMES if n not in FROZEN_ACTIONS]
        self.action_index = torch.tensor([self.action_labels.index(n) for n in fit_actions])
        self.arkit_index = torch.tensor([ARKIT52_NAMES.index(n) for n in fit_actions])
        p0 = torch.tensor([float(start_phenotype.get(n, 0.5)) for n in self.pheno_labels]).clamp(0.02, 0.98)
        self.register_buffer("pheno_start", p0)
        self.pheno_logit = torch.nn.Parameter(torch.log(p0 / (1 - p0)))
        self.change_raw = torch.nn.Parameter(torch.zeros(len(self.change_labels)))
        self.action_logit = torch.nn.Parameter(torch.full((len(fit_actions),), -4.0))
        self.head_bone = list(model.bone_labels).index("head")
        self.register_buffer("to_head", torch.tensor(ANNY_TO_HEAD, dtype=torch.float32))

    def phenotype(self):
        return torch.sigmoid(self.pheno_logit)

    def changes(self):
        return torch.tanh(self.change_raw)

    def actions(self):
        return torch.sigmoid(self.action_logit)

    def expression52(self) -> torch.Tensor:
        out = torch.zeros(52)
        return out.index_put((self.arkit_index,), self.actions())

    def forward(self) -> torch.Tensor:
        changes = torch.zeros(1, self.n_changes_all).index_put((torch.zeros_like(self.change_index),
                                                                self.change_index), self.changes())
        actions = torch.zeros(1, len(self.action_labels)).index_put(
            (torch.zeros_like(self.action_index), self.action_index), self.actions())
        out = self.model(phenotype_kwargs=self.phenotype()[None], local_changes_kwargs=changes,
                         facial_actions=actions)
        v = out["rest_vertices"][0].float()
        origin = out["rest_bone_heads"][0, self.head_bone].float()
        return (v - origin) @ self.to_head.T


def project_points(points: torch.Tensor, rotvec: torch.Tensor, trans: torch.Tensor, focal: torch.Tensor,
                   principal: torch.Tensor) -> torch.Tensor:
    """points [N, 3] head frame -> pixels [N, 2]; rotation = axis_angle(rotvec) @ OPENCV_FROM_HEAD."""
    R = axis_angle_to_matrix(rotvec) @ torch.as_tensor(OPENCV_FROM_HEAD, dtype=points.dtype)
    pc = points @ R.T + trans
    return focal * pc[:, :2] / pc[:, 2:3].clamp_min(1e-3) + principal


def fit_head(face: FaceDetection, image_size: tuple, anchors, model, faces: np.ndarray,
             cfg: FitConfig = FitConfig(), show_progress: bool = True) -> HeadFit:
    """Fit to ``face`` (landmarks of a photo of ``image_size`` (width, height)); ``anchors`` from
    ``correspondence.find_anchors``; ``model`` from ``build_face_model``; ``faces`` [F, 3] the head topology."""
    torch.manual_seed(0)
    w, h = image_size
    target = torch.as_tensor(face.landmarks, dtype=torch.float32)
    iod = float(face.inter_ocular)
    weight = torch.as_tensor(anchors.weight, dtype=torch.float32)
    weight = weight / weight.sum()
    principal = torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0])
    f0 = cfg.focal_over_size * max(w, h)
    net = AnnyFace(model, cfg.start_phenotype)
    faces_t = torch.as_tensor(faces, dtype=torch.int64)

    with torch.no_grad():
        v0 = net()
        lm3 = anchors.points(v0, faces_t)
        eyes3 = torch.stack([lm3[EYE_R_IMG].mean(0), lm3[EYE_L_IMG].mean(0)])
        iod_m = float((eyes3[0] - eyes3[1]).norm())
        depth = f0 * iod_m / iod
        centre = target.mean(0)
        lm_centre = lm3.mean(0)
        t0 = torch.tensor([(float(centre[0]) - float(principal[0])) * depth / f0,
                           (float(centre[1]) - float(principal[1])) * depth / f0, depth])
        t0 = t0 - torch.as_tensor(OPENCV_FROM_HEAD, dtype=torch.float32) @ lm_centre
    rotvec = torch.zeros(3, requires_grad=True)
    trans = t0.clone().requires_grad_(True)
    log_f = torch.tensor(math.log(f0), requires_grad=True)
    history = []

    def data_term(points):
        px = project_points(points, rotvec, trans, log_f.exp(), principal)
        return (weight * ((px - target) ** 2).sum(1)).sum() / iod ** 2, px

    # stage 1: pose and focal length on the start shape (translation in units of the depth for a balanced step)
    opt = torch.optim.Adam([{"params": [rotvec, log_f], "lr": cfg.lr},
                            {"params": [trans], "lr": cfg.lr * depth * 0.3}])
    bar = tqdm(total=cfg.pose_steps + cfg.steps, desc="fit head", disable=not show_progress)
    for _ in range(cfg.pose_steps):
        loss, _ = data_term(lm3)
        loss = loss + cfg.lambda_focal * (log_f - math.log(f0)) ** 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        bar.update()
    # stage 2: everything
    opt = torch.optim.Adam([{"params": [rotvec, log_f, net.pheno_logit, net.change_raw, net.action_logit],
                             "lr": cfg.lr}, {"params": [trans], "lr": cfg.lr * depth * 0.3}])
    for step in range(cfg.steps):
        v = net()
        data, px = data_term(anchors.points(v, faces_t))
        loss = (data + cfg.lambda_shape * (net.changes() ** 2).sum()
                + cfg.lambda_phenotype * ((net.phenotype() - net.pheno_start) ** 2).sum()
                + cfg.lambda_expression * net.actions().sum()
                + cfg.lambda_focal * (log_f - math.log(f0)) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        err = float(((px.detach() - target) ** 2).sum(1).sqrt().mean())
        history.append((step, float(loss.detach()), err))
        bar.set_postfix(err_px=f"{err:.2f}", err_iod=f"{100 * err / iod:.2f}%")
        bar.update()
    bar.close()
    with torch.no_grad():
        v = net()
        px = project_points(anchors.points(v, faces_t), rotvec, trans, log_f.exp(), principal).numpy()
        R = (axis_angle_to_matrix(rotvec) @ torch.as_tensor(OPENCV_FROM_HEAD, dtype=torch.float32)).double().numpy()
    # re-orthonormalise (float32 Rodrigues) so Camera accepts it
    u, _, vt = np.linalg.svd(R)
    w2c = np.eye(4)
    w2c[:3, :3] = u @ vt
    w2c[:3, 3] = trans.detach().double().numpy()
    err = np.linalg.norm(px - face.landmarks, axis=1)
    return HeadFit(
        phenotype={n: round(float(x), 5) for n, x in zip(net.pheno_labels, net.phenotype().detach())},
        local_changes={n: round(float(x), 5) for n, x in zip(net.change_labels, net.changes().detach())
                       if abs(float(x)) > 1e-4},
        expression=net.expression52().detach().numpy().astype(np.float32), world_to_cam=w2c,
        focal=float(log_f.detach().exp()), principal=(float(principal[0]), float(principal[1])), projected=px,
        error_px=float(err.mean()), error_iod=float(err.mean() / iod), history=history)
