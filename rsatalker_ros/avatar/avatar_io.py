"""Avatar files: safetensors, no pickles.

Format (``*.safetensors``), tensors (little-endian, safetensors dtypes):
    means           F32 [N, 3]   local means (triangle frame, units of k)
    log_scales      F32 [N, 3]   local log standard deviations
    quats           F32 [N, 4]   local rotations, wxyz
    opacity_logits  F32 [N]      opacity = sigmoid(logit)
    sh              F32 [N, K, 3] SH colour coefficients, K = (degree+1)^2, degree 0..3
    parent          I64 [N]      parent triangle index into faces
    faces           I64 [F, 3]   the head topology the avatar was built on
metadata (string -> string):
    format = "rsatalker_ros.gaussian_avatar", version = "1", head = <head name>, sh_degree = <d>
Loading validates everything (missing key, wrong shape or dtype, NaN, triangle or vertex index out of range,
sizes beyond MAX_GAUSSIANS / MAX_HEAD_VERTICES) and, when a head's faces or name is given, that the avatar belongs
to that head; problems raise BadFileError (a ValueError) with what was expected. safetensors checks each tensor's
declared extent against the file, so loading takes about the file's size in memory.
"""

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from rsatalker_ros.face.head_data import MAX_HEAD_VERTICES
from rsatalker_ros.files import BadFileError, checked_size

from .gaussians import GaussianAvatar

FORMAT = "rsatalker_ros.gaussian_avatar"
VERSION = "1"
TENSOR_KEYS = ("means", "log_scales", "quats", "opacity_logits", "sh", "parent", "faces")
MAX_AVATAR_BYTES = 2 << 30       # the shipped avatars: 2 MB
MAX_GAUSSIANS = 4_000_000        # the shipped avatars: about 27,000


def save_avatar(path, avatar: GaussianAvatar) -> None:
    """Validate and write ``avatar`` to ``path`` (parent folders are created)."""
    avatar.validate()
    tensors = {
        "means": avatar.means.detach().float(),
        "log_scales": avatar.log_scales.detach().float(),
        "quats": avatar.quats.detach().float(),
        "opacity_logits": avatar.opacity_logits.detach().float(),
        "sh": avatar.sh.detach().float(),
        "parent": avatar.parent.detach().to(torch.int64),
        "faces": avatar.faces.detach().to(torch.int64),
    }
    tensors = {k: v.cpu().contiguous() for k, v in tensors.items()}
    meta = {"format": FORMAT, "version": VERSION, "head": avatar.head, "sh_degree": str(avatar.sh_degree)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)


def load_avatar(path, faces=None, head: str | None = None) -> GaussianAvatar:
    """Read ``path`` -> GaussianAvatar (float32 / int64 CPU tensors).

    faces [F, 3] (optional): the head mesh's triangles; raises BadFileError if the avatar was built on another
    topology. head (optional): expected head name; raises BadFileError if the file says another.
    """
    path = Path(path)
    checked_size(path, "avatar file (.safetensors)", MAX_AVATAR_BYTES)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise BadFileError(path, f"metadata format is {str(meta.get('format'))[:80]!r}; expected {FORMAT!r}")
            if meta.get("version") != VERSION:
                raise BadFileError(path, f"avatar format version {str(meta.get('version'))[:20]!r}; this code "
                                         f"reads {VERSION!r}")
            missing = [k for k in TENSOR_KEYS if k not in f.keys()]
            if missing:
                raise BadFileError(path, f"missing tensor(s) {missing}; an avatar file holds {list(TENSOR_KEYS)}")
            tensors = {k: f.get_tensor(k) for k in TENSOR_KEYS}
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as e:
        if isinstance(e, BadFileError):
            raise
        raise BadFileError(path, f"not a readable safetensors avatar file ({type(e).__name__}: {e})") from e
    n = tensors["means"].shape[0] if tensors["means"].dim() else 0
    if n > MAX_GAUSSIANS:
        raise BadFileError(path, f"{n} Gaussians; at most {MAX_GAUSSIANS} are accepted")
    avatar = GaussianAvatar(
        means=tensors["means"], log_scales=tensors["log_scales"], quats=tensors["quats"],
        opacity_logits=tensors["opacity_logits"], sh=tensors["sh"], parent=tensors["parent"],
        faces=tensors["faces"], head=str(meta.get("head", ""))[:200])
    try:
        avatar.validate()
    except (ValueError, IndexError, RuntimeError) as e:
        raise BadFileError(path, str(e)) from e
    # every vertex of a head belongs to a triangle: F triangles index at most 3 F vertices
    n_faces, top = avatar.faces.shape[0], int(avatar.faces.max())
    if top >= min(MAX_HEAD_VERTICES, 3 * n_faces):
        raise BadFileError(path, f"faces index vertex {top}; a head of {n_faces} triangles has at most "
                                 f"{min(MAX_HEAD_VERTICES, 3 * n_faces)} vertices (at most {MAX_HEAD_VERTICES})")
    if "sh_degree" in meta and meta["sh_degree"] != str(avatar.sh_degree):
        raise BadFileError(path, f"metadata sh_degree {meta['sh_degree'][:20]} but sh holds degree "
                                 f"{avatar.sh_degree}")
    if head is not None and avatar.head != head:
        raise BadFileError(path, f"avatar was built for head {avatar.head!r}; expected head {head!r}")
    if faces is not None:
        try:
            avatar.check_topology(faces)
        except ValueError as e:
            raise BadFileError(path, str(e)) from e
    avatar.parent = avatar.parent.to(torch.int64)
    avatar.faces = avatar.faces.to(torch.int64)
    return avatar


AVATAR_DIR = Path(__file__).resolve().parent.parent / "assets" / "avatars"   # the shipped avatars


def resolve_avatar(name_or_path: str) -> Path:
    """An avatar file path, the name of a shipped avatar (rsatalker_ros/assets/avatars/<name>.safetensors), or a
    baked head file ``DIR/<name>.npz`` whose avatar lies beside it as ``DIR/<name>.safetensors`` (what
    ``rsatalker-avatar-from-photo`` writes), so a renderer given only that head finds the matching avatar."""
    p = Path(name_or_path)
    if p.suffix == ".npz":
        beside = p.with_suffix(".safetensors")
        if not beside.is_file():
            raise ValueError(f"no avatar beside head file {str(p)!r}: expected {str(beside)!r} (or set the "
                             f"renderer's avatar parameter to a .safetensors file)")
        return beside
    if p.suffix == ".safetensors" or p.is_file():
        if not p.is_file():
            raise ValueError(f"avatar file {str(p)!r} does not exist")
        return p
    shipped = AVATAR_DIR / f"{name_or_path}.safetensors"
    if not shipped.is_file():
        have = sorted(x.stem for x in AVATAR_DIR.glob("*.safetensors")) if AVATAR_DIR.is_dir() else []
        raise ValueError(f"no avatar {name_or_path!r}: expected a .safetensors file or one of the shipped "
                         f"avatars {have} in {AVATAR_DIR}")
    return shipped
