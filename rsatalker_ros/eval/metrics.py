"""Motion metrics (per clip; average over clips for a table).

Vertex metrics (speech-driven 3D faces: FaceFormer, CodeTalker), on head vertices from ``HeadModel``:
  LVE  lip vertex error: per frame the maximum over lip vertices of the L2 distance between predicted and
       ground-truth positions, averaged over frames (mm when the vertices are given in mm).
  FDD  upper-face dynamics deviation (CodeTalker): per upper-face vertex the standard deviation over time of its
       squared displacement from the neutral head, averaged over vertices; FDD = |that of ground truth - that of
       the prediction| (mm^2 for mm vertices). CodeTalker reports the signed difference; we report its magnitude.
Parameter metrics (DualTalk, /work/shared/DUALTALK.md), per group of the motion layout (exp = expression dims,
jaw, pose = neck):
  FD   Frechet distance between Gaussians fitted to predicted and ground-truth frames of a clip:
       |mu_p - mu_g|^2 + Tr(S_p + S_g - 2 (S_p S_g)^(1/2)), covariances with ddof=1.
  MSE  mean over frames and dims of (pred - gt)^2.
"""

import warnings

import numpy as np
import scipy.linalg
import torch

from rsatalker_ros.face.lbs import axis_angle_to_matrix, blend, joint_transforms, skin
from rsatalker_ros.motion.layout import MotionLayout


def _pair(pred, gt, ndim: int, what: str):
    p, g = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if p.shape != g.shape or p.ndim != ndim:
        raise ValueError(f"{what}: prediction and ground truth must have the same {ndim}-D shape, got "
                         f"{p.shape} and {g.shape}")
    return p, g


def lve(pred_lips, gt_lips) -> float:
    """pred_lips, gt_lips: [T, L, 3] lip vertex positions. Mean over frames of the max over vertices of L2 error."""
    p, g = _pair(pred_lips, gt_lips, 3, "LVE")
    return float(np.linalg.norm(p - g, axis=2).max(axis=1).mean())


def fdd(pred_upper, gt_upper, neutral_upper) -> float:
    """pred_upper, gt_upper: [T, U, 3] upper-face vertices; neutral_upper: [U, 3] the neutral head's."""
    p, g = _pair(pred_upper, gt_upper, 3, "FDD")
    n = np.asarray(neutral_upper, np.float64)
    if n.shape != p.shape[1:]:
        raise ValueError(f"FDD: neutral vertices must be [{p.shape[1]}, 3], got {n.shape}")
    dyn = lambda v: (((v - n) ** 2).sum(2)).std(axis=0).mean()  # noqa: E731
    return float(abs(dyn(g) - dyn(p)))


def frechet_distance(pred, gt) -> float:
    """pred [N, D], gt [M, D] frames (N, M >= 2). Frechet distance of the fitted Gaussians (DualTalk's FD)."""
    p, g = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if p.ndim != 2 or g.ndim != 2 or p.shape[1] != g.shape[1] or min(len(p), len(g)) < 2:
        raise ValueError(f"FD: expected [N, D] and [M, D] frames with N, M >= 2, got {p.shape} and {g.shape}")
    mu_p, mu_g = p.mean(0), g.mean(0)
    s_p = np.atleast_2d(np.cov(p, rowvar=False, ddof=1))
    s_g = np.atleast_2d(np.cov(g, rowvar=False, ddof=1))
    with warnings.catch_warnings():   # singular covariances (e.g. a constant prediction) are expected
        warnings.simplefilter("ignore")
        covmean = scipy.linalg.sqrtm(s_p @ s_g)
        if not np.isfinite(covmean).all():
            eye = np.eye(len(mu_p)) * 1e-6
            covmean = scipy.linalg.sqrtm((s_p + eye) @ (s_g + eye))
    covmean = np.real(covmean)
    return float(((mu_p - mu_g) ** 2).sum() + np.trace(s_p + s_g - 2.0 * covmean))


def mse(pred, gt) -> float:
    p, g = _pair(pred, gt, 2, "MSE")
    return float(((p - g) ** 2).mean())


def parameter_metrics(pred, gt, layout: MotionLayout) -> dict[str, float]:
    """pred, gt: [T, D] motion in ``layout``. Returns {FD-exp, FD-jaw, FD-pose, MSE-exp, MSE-jaw, MSE-pose}."""
    p, g = _pair(pred, gt, 2, "parameter metrics")
    if p.shape[1] != layout.dim:
        raise ValueError(f"motion must be [T, {layout.dim}] for basis {layout.basis!r}, got {p.shape}")
    out = {}
    for name, sl in (("exp", layout.expression), ("jaw", layout.jaw), ("pose", layout.neck)):
        out[f"FD-{name}"] = frechet_distance(p[:, sl], g[:, sl])
        out[f"MSE-{name}"] = mse(p[:, sl], g[:, sl])
    return out


class RegionVertices:
    """Head vertices of some regions only (e.g. lips and upper face), posed exactly like ``HeadModel.from_motion``
    but computing just those vertices (the metrics need ~1/4 of the head). Units: metres x ``scale``."""

    def __init__(self, head, regions=("lips", "upper_face"), scale: float = 1000.0):
        missing = [r for r in regions if r not in head.regions]
        if missing:
            raise ValueError(f"head {head.name!r} has no regions {missing} (has {sorted(head.regions)})")
        self.head, self.scale = head, scale
        idx = torch.unique(torch.cat([head.regions[r] for r in regions]))
        self.idx = idx
        pos = {int(v): i for i, v in enumerate(idx.tolist())}
        self.slices = {r: torch.tensor([pos[int(v)] for v in head.regions[r].tolist()]) for r in regions}
        V = head.n_vertices
        cols = head._dirs.shape[1]
        self.v_template = head.v_template[idx]
        self.dirs = head._dirs.reshape(V, 3, cols)[idx].reshape(-1, cols)
        self.posedirs = head.posedirs.reshape(head.posedirs.shape[0], V, 3)[:, idx].reshape(head.posedirs.shape[0], -1) \
            if head.posedirs.shape[0] else head.posedirs
        self.weights = head.weights[idx]

    @torch.no_grad()
    def __call__(self, motion) -> dict[str, np.ndarray]:
        """motion [T, D] in the head's layout -> {region: [T, n_region, 3]} in metres x scale."""
        verts = self.pose(torch.as_tensor(np.asarray(motion), dtype=torch.float32)).numpy()
        return {r: verts[:, s] for r, s in self.slices.items()}

    def pose(self, m: torch.Tensor) -> torch.Tensor:
        """Differentiable posing: motion [B, D] -> the regions' vertices [B, n_idx, 3] (metres x scale)."""
        h = self.head
        parts = h.split_motion(m)
        b = m.shape[0]
        coeffs = parts["expression"]
        if h.n_shape:
            coeffs = torch.cat([m.new_zeros(b, h.n_shape), coeffs], 1)
        verts = blend(self.v_template, self.dirs, coeffs)
        joints = blend(h.j_template, h._jdirs, coeffs)
        eyes = parts["eyes"]
        rot = axis_angle_to_matrix(torch.stack([m.new_zeros(b, 3), parts["neck"], parts["jaw"], eyes[:, :3],
                                                eyes[:, 3:]], 1))
        if self.posedirs.shape[0]:
            feat = (rot[:, 1:] - torch.eye(3)).reshape(b, -1)
            verts = verts + (feat @ self.posedirs).reshape(b, -1, 3)
        _, transforms = joint_transforms(rot, joints, h.parents)
        return skin(verts, self.weights, transforms) * self.scale


class LipOpening:
    """Inner-lip opening of the posed head (mm for the default scale): per frame, the lowest point of the upper
    lip's midline minus the highest point of the lower lip's midline (vertices within ``midline_mm`` of the lips'
    centre line), floored at 0. The default heads measure ~0 mm at rest and ~25 mm at jawOpen 0.5."""

    def __init__(self, head, midline_mm: float = 5.0):
        self.rv = RegionVertices(head, regions=("upper_lip", "lower_lip"))
        rest = self.rv(np.zeros((1, head.layout.dim), np.float32))
        up, lo = rest["upper_lip"][0], rest["lower_lip"][0]
        cx = 0.5 * (up[:, 0].max() + up[:, 0].min())
        self.upper = self.rv.slices["upper_lip"][torch.from_numpy(np.abs(up[:, 0] - cx) < midline_mm)]
        self.lower = self.rv.slices["lower_lip"][torch.from_numpy(np.abs(lo[:, 0] - cx) < midline_mm)]
        if not len(self.upper) or not len(self.lower):
            raise ValueError(f"head {head.name!r}: no lip vertices within {midline_mm} mm of the midline")

    def differentiable(self, motion: torch.Tensor) -> torch.Tensor:
        """Differentiable: motion [..., D] -> opening [...] (mm)."""
        flat = motion.reshape(-1, motion.shape[-1])
        v = self.rv.pose(flat)
        gap = v[:, self.upper, 1].amin(1) - v[:, self.lower, 1].amax(1)
        return torch.relu(gap).reshape(motion.shape[:-1])

    @torch.no_grad()
    def __call__(self, motion) -> np.ndarray:
        """motion [T, D] -> opening [T] (mm)."""
        return self.differentiable(torch.as_tensor(np.asarray(motion), dtype=torch.float32)).numpy()
