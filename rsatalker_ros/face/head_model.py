"""One skinning layer for every head: a user's FLAME file or a baked default head.

    head = load_head("default_older")                  # or "default_younger", or "/path/to/generic_model.pkl"
    verts = head.from_motion(motion)                   # motion [B, E + 12] in head.layout -> [B, V, 3] metres

Head frame (FLAME convention): x towards the head's own left (the viewer's right when facing it), y up, z out of
the face; metres; the neutral head's origin is at the head joint for the default heads (FLAME files keep theirs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rsatalker_ros.face.head_data import JOINT_NAMES, HeadData
from rsatalker_ros.face.lbs import axis_angle_to_matrix, blend, joint_transforms, skin
from rsatalker_ros.face.regions import LABEL_NAMES, REQUIRED_REGIONS, flame_regions
from rsatalker_ros.motion.layout import MotionLayout

DEFAULT_HEADS = ("default_older", "default_younger")
ASSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "heads"


class HeadModel(torch.nn.Module):
    """Batched linear blend skinning of a head in compact form (``HeadData``).

    Attributes: basis ("arkit52" | "flame50" | "flame100"), layout (MotionLayout), faces LongTensor [F, 3],
    n_vertices, n_shape, regions {name: LongTensor}, joint_names; for the default heads also uvs [Vt, 2],
    face_uvs [F, 3], vertex_labels LongTensor [V] (names in ``label_names``), uv_masks uint8 [M, H, W] with
    ``uv_mask_names``. Everything is a buffer, so ``.to(device)`` moves it.
    """

    def __init__(self, data: HeadData, name: str = ""):
        super().__init__()
        data.validate()
        self.name = name
        self.basis = data.basis
        self.layout = MotionLayout.for_basis(data.basis)
        self.meta = dict(data.meta)
        self.joint_names = JOINT_NAMES
        self.parents = [int(p) for p in data.parents]
        self.n_vertices = int(data.v_template.shape[0])
        self.n_shape = int(data.shapedirs.shape[2])
        f32 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
        self.register_buffer("v_template", f32(data.v_template))
        self.register_buffer("shapedirs", f32(data.shapedirs))
        self.register_buffer("exprdirs", f32(data.exprdirs))
        self.register_buffer("posedirs", f32(data.posedirs))
        self.register_buffer("j_template", f32(data.j_template))
        self.register_buffer("j_shapedirs", f32(data.j_shapedirs))
        self.register_buffer("j_exprdirs", f32(data.j_exprdirs))
        self.register_buffer("weights", f32(data.weights))
        # flattened [N*3, S+E] copies for one GEMM per forward
        self.register_buffer("_dirs", torch.cat([self.shapedirs, self.exprdirs], 2).reshape(self.n_vertices * 3, -1),
                             persistent=False)
        self.register_buffer("_jdirs", torch.cat([self.j_shapedirs, self.j_exprdirs], 2).reshape(-1, self._dirs.shape[1]),
                             persistent=False)
        self.register_buffer("faces", torch.as_tensor(np.asarray(data.faces, dtype=np.int64)))
        self.regions: dict[str, torch.Tensor] = {}
        for key, idx in data.regions.items():
            self.regions[key] = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        missing = [r for r in REQUIRED_REGIONS if r not in self.regions]
        if missing:
            raise ValueError(f"head data lacks regions {missing}")
        self.uvs = None if data.uvs is None else f32(data.uvs)
        self.face_uvs = None if data.face_uvs is None else torch.as_tensor(np.asarray(data.face_uvs, np.int64))
        self.vertex_labels = (None if data.vertex_labels is None
                              else torch.as_tensor(np.asarray(data.vertex_labels, dtype=np.int64)))
        self.label_names = LABEL_NAMES if data.vertex_labels is not None else ()
        self.uv_masks = None if data.uv_masks is None else torch.as_tensor(np.asarray(data.uv_masks))
        self.uv_mask_names = tuple(data.uv_mask_names)

    # ------------------------------------------------------------------ posing
    def _batch(self, x, b: int, width: int, name: str) -> torch.Tensor:
        if x is None:
            return self.v_template.new_zeros(b, width)
        if not torch.is_tensor(x) or x.dim() != 2 or x.shape[1] != width:
            shape = list(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"{name} must be a tensor [B, {width}], got {shape}")
        if x.shape[0] != b:
            raise ValueError(f"{name} has batch {x.shape[0]}, expression has batch {b}")
        return x.to(self.v_template.dtype)

    def pose(self, expression, jaw, neck, eyes, global_rot=None, translation=None, shape=None):
        """Returns (vertices [B, V, 3], posed joints [B, 5, 3]) in metres. See ``forward`` for the arguments."""
        if not torch.is_tensor(expression) or expression.dim() != 2:
            raise ValueError(f"expression must be a tensor [B, {self.layout.n_expression}]")
        b = expression.shape[0]
        expression = self._batch(expression, b, self.layout.n_expression, f"expression ({self.basis})")
        jaw, neck = self._batch(jaw, b, 3, "jaw"), self._batch(neck, b, 3, "neck")
        eyes = self._batch(eyes, b, 6, "eyes")
        global_rot = self._batch(global_rot, b, 3, "global_rot")
        translation = self._batch(translation, b, 3, "translation")
        if self.n_shape:
            coeffs = torch.cat([self._batch(shape, b, self.n_shape, "shape"), expression], 1)
        else:
            if shape is not None and shape.numel():
                raise ValueError("this head has no shape directions; pass shape=None")
            coeffs = expression
        verts = blend(self.v_template, self._dirs, coeffs)                            # [B, V, 3]
        joints = blend(self.j_template, self._jdirs, coeffs)                          # [B, 5, 3]
        rotvecs = torch.stack([global_rot, neck, jaw, eyes[:, :3], eyes[:, 3:]], 1)   # [B, 5, 3]
        rot = axis_angle_to_matrix(rotvecs)
        if self.posedirs.shape[0]:
            eye3 = torch.eye(3, dtype=rot.dtype, device=rot.device)
            feat = (rot[:, 1:] - eye3).reshape(b, -1)                                 # [B, 36]
            verts = verts + (feat @ self.posedirs).reshape(b, -1, 3)
        posed_joints, transforms = joint_transforms(rot, joints, self.parents)
        verts = skin(verts, self.weights, transforms)
        return verts + translation[:, None], posed_joints + translation[:, None]

    def forward(self, expression: torch.Tensor, jaw: torch.Tensor, neck: torch.Tensor, eyes: torch.Tensor,
                global_rot: torch.Tensor | None = None, translation: torch.Tensor | None = None,
                shape: torch.Tensor | None = None) -> torch.Tensor:
        """expression [B, E] (basis ``self.basis``), jaw/neck/global_rot [B, 3] axis-angle radians, eyes [B, 6]
        (left 3, right 3), translation [B, 3] metres, shape [B, S] -> vertices [B, V, 3] metres, head frame."""
        return self.pose(expression, jaw, neck, eyes, global_rot, translation, shape)[0]

    def joints(self, expression, jaw, neck, eyes, global_rot=None, translation=None, shape=None) -> torch.Tensor:
        """Posed joint positions [B, 5, 3] (global, neck, jaw, left eye, right eye), metres."""
        return self.pose(expression, jaw, neck, eyes, global_rot, translation, shape)[1]

    def split_motion(self, motion: torch.Tensor) -> dict[str, torch.Tensor]:
        """motion [B, E+12] (``self.layout``) -> {"expression", "jaw", "neck", "eyes"}."""
        if not torch.is_tensor(motion) or motion.dim() != 2 or motion.shape[1] != self.layout.dim:
            shape = list(motion.shape) if torch.is_tensor(motion) else type(motion).__name__
            raise ValueError(f"motion must be [B, {self.layout.dim}] ({self.basis} layout), got {shape}")
        lay = self.layout
        return {"expression": motion[:, lay.expression], "jaw": motion[:, lay.jaw], "neck": motion[:, lay.neck],
                "eyes": motion[:, lay.eyes]}

    def from_motion(self, motion: torch.Tensor, shape: torch.Tensor | None = None) -> torch.Tensor:
        """motion [B, E+12] in ``self.layout`` -> vertices [B, V, 3] metres."""
        return self.forward(**self.split_motion(motion), shape=shape)

    def neutral(self) -> torch.Tensor:
        """Neutral vertices [V, 3] (zero expression and pose)."""
        zero = self.v_template.new_zeros(1, self.layout.dim)
        return self.from_motion(zero)[0]

    def to(self, *args, **kwargs):  # move the non-buffer tensors too
        out = super().to(*args, **kwargs)
        device = self.v_template.device
        self.regions = {k: v.to(device) for k, v in self.regions.items()}
        for attr in ("uvs", "face_uvs", "vertex_labels", "uv_masks"):
            if getattr(self, attr) is not None:
                setattr(self, attr, getattr(self, attr).to(device))
        return out

    def extra_repr(self) -> str:
        return f"name={self.name!r}, basis={self.basis}, vertices={self.n_vertices}, faces={len(self.faces)}"


def load_head(name_or_path: str, basis: str | None = None) -> HeadModel:
    """A shipped default head by name ("default_older", "default_younger"), a baked head file (.npz), or a user's
    FLAME model (.pkl, loaded without running pickled code; ``basis`` "flame100" (default) or "flame50").
    A ``FLAME_masks.pkl`` beside the FLAME file supplies its lip/eye/forehead regions when present."""
    name_or_path = str(name_or_path)
    if name_or_path in DEFAULT_HEADS:
        path = ASSET_DIR / f"{name_or_path}.npz"
        if not path.is_file():
            raise ValueError(f"default head file {path} is missing; bake it with "
                             f"`python -m rsatalker_ros.cli.bake_heads --out {ASSET_DIR}`")
        return HeadModel(HeadData.load(path), name=name_or_path)
    path = Path(name_or_path)
    if path.suffix == ".npz":
        return HeadModel(HeadData.load(path), name=path.stem)
    if path.suffix == ".pkl":
        from rsatalker_ros.face.flame_loader import load_flame, load_flame_masks
        data = load_flame(path, basis=basis or "flame100")
        masks_path = path.with_name("FLAME_masks.pkl")
        masks = load_flame_masks(masks_path, len(data.v_template)) if masks_path.is_file() else None
        data.regions = flame_regions(data.v_template, data.weights, data.j_template, masks)
        return HeadModel(data, name=path.stem)
    raise ValueError(f"unknown head {name_or_path!r}: expected one of {list(DEFAULT_HEADS)}, "
                     f"a FLAME model .pkl or a baked head .npz")
