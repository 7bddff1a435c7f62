"""Gaussian avatar: 3D Gaussians bound to the triangles of a head mesh (GaussianAvatars style).

A ``GaussianAvatar`` stores every Gaussian in the local frame of its parent triangle (see ``binding.py`` for the
frame); ``bind(avatar, vertices)`` places them on a posed mesh and returns ``WorldGaussians`` for ``render()``.

Units: world positions in metres (whatever the head mesh uses); colours as real spherical-harmonics coefficients
in the 3DGS convention (colour = SH(dir) + 0.5, clamped at 0; degree 0: rgb = 0.28209479 * sh[:, 0] + 0.5).
"""

import math
from dataclasses import dataclass, fields

import numpy as np
import torch

from .binding import bind_arrays, bind_constants, bind_fused, bind_tensors

SH_C0 = 0.28209479177387814


def rgb_to_sh0(rgb: torch.Tensor) -> torch.Tensor:
    """rgb [..., 3] in 0..1 -> degree-0 SH coefficient [..., 3]."""
    return (rgb - 0.5) / SH_C0


def sh_degree_of(k: int) -> int:
    """Number of SH coefficients K = (d+1)^2 -> degree d (0..3); ValueError otherwise."""
    d = int(round(math.sqrt(k))) - 1
    if d < 0 or d > 3 or (d + 1) ** 2 != k:
        raise ValueError(f"sh has {k} coefficients per colour; expected (d+1)^2 for degree d in 0..3 (1, 4, 9, 16)")
    return d


@dataclass
class WorldGaussians:
    """Gaussians in world space, ready to render (gsplat conventions).

    means [..., N, 3] metres; scales [..., N, 3] standard deviations in metres (not log);
    quats [..., N, 4] wxyz (normalised by the renderers); opacities [..., N] in 0..1 (after sigmoid);
    sh [..., N, K, 3] SH colour coefficients, K = (degree+1)^2.
    A leading batch dimension appears when ``bind`` got [B, V, 3] vertices; ``render`` takes one (unbatched) set.
    """
    means: torch.Tensor
    scales: torch.Tensor
    quats: torch.Tensor
    opacities: torch.Tensor
    sh: torch.Tensor

    @property
    def sh_degree(self) -> int:
        return sh_degree_of(self.sh.shape[-2])

    def __len__(self) -> int:
        return self.means.shape[-2]

    def __getitem__(self, b: int) -> "WorldGaussians":
        """Select one element of a batch: WorldGaussians with [B, N, ...] fields -> [N, ...]."""
        if self.means.dim() != 3:
            raise ValueError("indexing needs batched WorldGaussians (means [B, N, 3])")
        return WorldGaussians(self.means[b], self.scales[b], self.quats[b], self.opacities[b], self.sh[b])

    @staticmethod
    def from_colors(means, scales, quats, opacities, colors) -> "WorldGaussians":
        """Build from plain rgb colours [N, 3] in 0..1 (degree-0 SH); tensors keep their gradients."""
        def f32(x):
            return x.float() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float32))
        return WorldGaussians(f32(means), f32(scales), f32(quats), f32(opacities),
                              rgb_to_sh0(f32(colors))[..., None, :])


@dataclass
class GaussianAvatar:
    """Local Gaussians bound to mesh triangles (all torch tensors; make them leaf Parameters to train).

    means [N, 3] local (triangle-frame units, scaled by k); log_scales [N, 3] local; quats [N, 4] wxyz local;
    opacity_logits [N] (opacity = sigmoid); sh [N, K, 3] with K = (degree+1)^2; parent [N] long triangle index;
    faces [F, 3] long: the head topology the avatar was built on; head: name of that head (e.g. "default_older").
    """
    means: torch.Tensor
    log_scales: torch.Tensor
    quats: torch.Tensor
    opacity_logits: torch.Tensor
    sh: torch.Tensor
    parent: torch.Tensor
    faces: torch.Tensor
    head: str = ""

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def sh_degree(self) -> int:
        return sh_degree_of(self.sh.shape[1])

    def validate(self, num_vertices: int | None = None) -> None:
        """Raise ValueError naming the first field that is inconsistent (shape, dtype, NaN, index range)."""
        for f in fields(self):
            if f.name != "head" and not isinstance(getattr(self, f.name), torch.Tensor):
                raise ValueError(f"GaussianAvatar.{f.name} must be a torch.Tensor, got {type(getattr(self, f.name))}")
        n = self.means.shape[0] if self.means.dim() == 2 else -1
        expect = {"means": (n, 3), "log_scales": (n, 3), "quats": (n, 4), "opacity_logits": (n,), "parent": (n,)}
        for name, shape in expect.items():
            t = getattr(self, name)
            if tuple(t.shape) != shape or n < 0:
                raise ValueError(f"{name} has shape {tuple(t.shape)}; expected {shape} (N = {n} from means [N, 3])")
        if self.sh.dim() != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3:
            raise ValueError(f"sh has shape {tuple(self.sh.shape)}; expected [N={n}, K, 3]")
        sh_degree_of(self.sh.shape[1])
        if self.faces.dim() != 2 or self.faces.shape[1] != 3 or self.faces.shape[0] == 0:
            raise ValueError(f"faces has shape {tuple(self.faces.shape)}; expected [F > 0, 3]")
        for name in ("parent", "faces"):
            if getattr(self, name).dtype not in (torch.int64, torch.int32):
                raise ValueError(f"{name} must hold integers, got {getattr(self, name).dtype}")
        for name in ("means", "log_scales", "quats", "opacity_logits", "sh"):
            t = getattr(self, name)
            if not t.is_floating_point():
                raise ValueError(f"{name} must be floating point, got {t.dtype}")
            if not torch.isfinite(t).all():
                raise ValueError(f"{name} contains NaN or infinite values")
        if (self.quats.norm(dim=-1) < 1e-8).any():
            raise ValueError("quats contains zero-length quaternions")
        F = self.faces.shape[0]
        if n > 0 and (self.parent.min() < 0 or self.parent.max() >= F):
            raise ValueError(f"parent triangle index out of range: min {int(self.parent.min())}, "
                             f"max {int(self.parent.max())}; expected 0..{F - 1} (F = {F} faces)")
        if self.faces.min() < 0:
            raise ValueError("faces contains negative vertex indices")
        if num_vertices is not None and self.faces.max() >= num_vertices:
            raise ValueError(f"faces index vertex {int(self.faces.max())}; the mesh has {num_vertices} vertices")

    def check_topology(self, faces) -> None:
        """Raise ValueError unless ``faces`` [F', 3] is the topology this avatar was built on, or that topology with
        triangles appended after it (a head that has since grown, e.g. teeth: ``face/teeth.py``; the avatar binds
        Gaussians to its first F triangles only, so the appended ones render nothing)."""
        faces = torch.as_tensor(np.asarray(faces), dtype=torch.int64)
        n = self.faces.shape[0]
        if faces.dim() != 2 or faces.shape[1] != 3 or faces.shape[0] < n:
            raise ValueError(f"head topology mismatch: the avatar was built on {n} triangles "
                             f"(head {self.head!r}), the mesh has faces of shape {tuple(faces.shape)}")
        faces = faces[:n]
        if not torch.equal(faces, self.faces.to(torch.int64)):
            bad = int((faces != self.faces.to(torch.int64)).any(-1).nonzero()[0])
            raise ValueError(f"head topology mismatch: triangle {bad} differs (avatar built on head {self.head!r})")

    @staticmethod
    def init_from_mesh(vertices, faces, per_triangle: int = 1, sh_degree: int = 0, colors=None,
                       opacity: float = 0.9, head: str = "", seed: int = 0) -> "GaussianAvatar":
        """One or more Gaussians per triangle, spread over it, flat along the normal.

        vertices [V, 3] (any array), faces [F, 3] int, colors [F, 3] rgb 0..1 or None (light grey).
        per_triangle = 1 puts one Gaussian at each centroid (GaussianAvatars); more spread them at stratified
        barycentric points (seeded). In-plane size sqrt(area / per_triangle), normal size a fifth of that.
        """
        if per_triangle < 1:
            raise ValueError(f"per_triangle must be >= 1, got {per_triangle}")
        if not 0 <= sh_degree <= 3:
            raise ValueError(f"sh_degree must be in 0..3, got {sh_degree}")
        if not 0.0 < opacity < 1.0:
            raise ValueError(f"opacity must be in (0, 1), got {opacity}")
        v = torch.as_tensor(np.asarray(vertices), dtype=torch.float32)
        fa = torch.as_tensor(np.asarray(faces), dtype=torch.int64)
        if v.dim() != 2 or v.shape[1] != 3:
            raise ValueError(f"vertices has shape {tuple(v.shape)}; expected [V, 3]")
        if fa.dim() != 2 or fa.shape[1] != 3 or fa.shape[0] == 0:
            raise ValueError(f"faces has shape {tuple(fa.shape)}; expected [F > 0, 3]")
        if fa.min() < 0 or fa.max() >= v.shape[0]:
            raise ValueError(f"faces index vertices 0..{int(fa.max())}; the mesh has {v.shape[0]} vertices")
        F = fa.shape[0]
        from .binding import triangle_frames
        R, k, T = triangle_frames(v, fa)
        # barycentric sample points: centroid for 1, else stratified random (seeded)
        if per_triangle == 1:
            bary = torch.full((F, 1, 3), 1.0 / 3.0)
        else:
            g = torch.Generator().manual_seed(seed)
            u = (torch.arange(per_triangle, dtype=torch.float32)[None, :] + torch.rand(F, per_triangle, generator=g))
            u = u / per_triangle
            w = torch.rand(F, per_triangle, generator=g)
            su = u.sqrt()
            bary = torch.stack([1 - su, su * (1 - w), su * w], dim=-1)  # uniform over the triangle
        tri = v[fa]  # [F, 3 corners, 3]
        p = bary @ tri  # [F, P, 3]
        local = ((p - T[:, None, :]) @ R) / k.clamp_min(1e-12)[:, None, None]  # R^T (p - T) / k
        e1 = tri[:, 1] - tri[:, 0]
        e2 = tri[:, 2] - tri[:, 0]
        area = 0.5 * torch.linalg.cross(e1, e2).norm(dim=-1)
        size = (area / per_triangle).sqrt() / k.clamp_min(1e-12)  # local units
        size = size.clamp_min(1e-6)
        log_s = torch.stack([size, 0.2 * size, size], dim=-1).log()  # local axes: edge, normal, in-plane
        N = F * per_triangle
        if colors is None:
            rgb = torch.full((F, 3), 0.7)
        else:
            rgb = torch.as_tensor(np.asarray(colors), dtype=torch.float32)
            if tuple(rgb.shape) != (F, 3):
                raise ValueError(f"colors has shape {tuple(rgb.shape)}; expected [F={F}, 3]")
        K = (sh_degree + 1) ** 2
        sh = torch.zeros(N, K, 3)
        sh[:, 0, :] = rgb_to_sh0(rgb).repeat_interleave(per_triangle, dim=0)
        quats = torch.zeros(N, 4)
        quats[:, 0] = 1.0
        return GaussianAvatar(
            means=local.reshape(N, 3).contiguous(),
            log_scales=log_s.repeat_interleave(per_triangle, dim=0),
            quats=quats,
            opacity_logits=torch.full((N,), math.log(opacity / (1 - opacity))),
            sh=sh,
            parent=torch.arange(F).repeat_interleave(per_triangle),
            faces=fa,
            head=head,
        )


def select(avatar: GaussianAvatar, index) -> GaussianAvatar:
    """The avatar restricted to the Gaussians ``index`` (long indices or bool mask [N]); same head and faces."""
    i = torch.as_tensor(index)
    return GaussianAvatar(avatar.means[i], avatar.log_scales[i], avatar.quats[i], avatar.opacity_logits[i],
                          avatar.sh[i], avatar.parent[i], avatar.faces, avatar.head)


def extend_to_faces(avatar: GaussianAvatar, vertices, faces, triangles=None, colors=None,
                    opacity: float = 0.9) -> GaussianAvatar:
    """The avatar moved onto a grown topology ``faces`` [F', 3] (its own F triangles first, then new ones, e.g. the
    teeth of ``face/teeth.py``), with one new Gaussian at the centroid of each new triangle in ``triangles``
    (indices >= F into ``faces``; default all new ones). vertices [V', 3]: the mesh the new Gaussians are shaped on
    (the neutral head); colors [len(triangles), 3] rgb 0..1 (default light grey). The old Gaussians are unchanged."""
    avatar.check_topology(faces)
    faces = torch.as_tensor(np.asarray(faces), dtype=torch.int64)
    n_old = avatar.faces.shape[0]
    tri = torch.arange(n_old, faces.shape[0]) if triangles is None else torch.as_tensor(triangles, dtype=torch.int64)
    if tri.numel() and (int(tri.min()) < n_old or int(tri.max()) >= faces.shape[0]):
        raise ValueError(f"triangles must index the new triangles {n_old}..{faces.shape[0] - 1}")
    if tri.numel() == 0:
        return GaussianAvatar(avatar.means, avatar.log_scales, avatar.quats, avatar.opacity_logits, avatar.sh,
                              avatar.parent, faces, avatar.head)
    new = GaussianAvatar.init_from_mesh(vertices, faces[tri].numpy(), sh_degree=avatar.sh_degree, colors=colors,
                                        opacity=opacity, head=avatar.head)
    cat = lambda a, b: torch.cat([a.detach().to(b.dtype), b])  # noqa: E731
    return GaussianAvatar(cat(avatar.means, new.means), cat(avatar.log_scales, new.log_scales),
                          cat(avatar.quats, new.quats), cat(avatar.opacity_logits, new.opacity_logits),
                          cat(avatar.sh, new.sh), torch.cat([avatar.parent.to(torch.int64), tri[new.parent]]),
                          faces, avatar.head)


def thin_to(avatar: GaussianAvatar, count: int, seed: int = 0) -> GaussianAvatar:
    """Keep ``count`` Gaussians chosen at random (seeded), never leaving a triangle without one
    (count must be >= the number of triangles that have Gaussians)."""
    n = len(avatar)
    if count >= n:
        return avatar
    parent = avatar.parent.numpy()
    _, first = np.unique(parent, return_index=True)  # one Gaussian per covered triangle always stays
    if count < len(first):
        raise ValueError(f"count {count} is below the {len(first)} triangles that carry Gaussians")
    rest = np.setdiff1d(np.arange(n), first)
    rng = np.random.default_rng(seed)
    keep = np.sort(np.concatenate([first, rng.choice(rest, count - len(first), replace=False)]))
    return select(avatar, torch.as_tensor(keep))


def bind(avatar: GaussianAvatar, vertices) -> WorldGaussians:
    """Place the avatar on a posed mesh (differentiable w.r.t. the avatar's tensors and the vertices).

    vertices: [V, 3] or [B, V, 3] in the avatar's topology -> WorldGaussians with [N, ...] or [B, N, ...] fields.
    """
    v = torch.as_tensor(vertices)
    if not v.is_floating_point():
        v = v.float()
    if v.dim() not in (2, 3) or v.shape[-1] != 3:
        raise ValueError(f"vertices has shape {tuple(v.shape)}; expected [V, 3] or [B, V, 3]")
    if int(avatar.faces.max()) >= v.shape[-2]:
        raise ValueError(f"the avatar's faces index vertex {int(avatar.faces.max())}; "
                         f"the mesh has {v.shape[-2]} vertices")
    v = v.to(avatar.means.dtype)
    m, s, q = bind_tensors(v, avatar.faces, avatar.parent, avatar.means, avatar.log_scales, avatar.quats)
    opac = torch.sigmoid(avatar.opacity_logits)
    sh = avatar.sh
    if v.dim() == 3:
        B = v.shape[0]
        opac = opac.expand(B, -1)
        sh = sh.expand(B, -1, -1, -1)
    return WorldGaussians(m, s, q, opac, sh)


class FastBinder:
    """Live-path binding (numba, float32, no gradients): precomputes the per-avatar constants once.

    ``FastBinder(avatar)(vertices [V, 3]) -> WorldGaussians`` (CPU tensors sharing numpy memory). The avatar's
    tensors are read when the binder is built; build a new one after changing the avatar.
    """

    def __init__(self, avatar: GaussianAvatar):
        avatar.validate()
        with torch.no_grad():
            q = avatar.quats / avatar.quats.norm(dim=-1, keepdim=True)
            # only the triangles that carry Gaussians get a frame per call (a 6k level uses 6000 of 10190)
            used, parent = np.unique(avatar.parent.numpy(), return_inverse=True)
            self.faces = avatar.faces.numpy()[used].astype(np.int32)
            self.parent = parent.reshape(-1).astype(np.int32)
            self.means = avatar.means.detach().float().numpy().copy()
            self.scales = avatar.log_scales.detach().float().exp().numpy().copy()
            self.quats = q.detach().float().numpy().copy()
            self.opacities = torch.sigmoid(avatar.opacity_logits.detach().float()).contiguous()
            self.sh = avatar.sh.detach().float().contiguous()
        self.num_vertices = int(avatar.faces.max()) + 1

    def __call__(self, vertices) -> WorldGaussians:
        v = np.asarray(vertices.detach() if isinstance(vertices, torch.Tensor) else vertices, dtype=np.float32)
        if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < self.num_vertices:
            raise ValueError(f"vertices has shape {v.shape}; expected [V >= {self.num_vertices}, 3]")
        m, s, q = bind_arrays(v, self.faces, self.parent, self.means, self.scales, self.quats)
        return WorldGaussians(torch.from_numpy(m), torch.from_numpy(s), torch.from_numpy(q), self.opacities, self.sh)


class TorchBinder:
    """Live-path binding in torch on one device (CPU or CUDA), no gradients: ``bind_fused``, a few whole-tensor ops
    per call instead of bind()'s many small ones, with the per-avatar constants (exp of the scales, unit quaternions
    as product matrices, sigmoid of the opacities) prepared once on ``device``.

    ``TorchBinder(avatar, device="cuda")(vertices [V, 3] or [B, V, 3]) -> WorldGaussians`` with [N, ...] or
    [B, N, ...] fields on ``device`` (opacities and sh of a batch are broadcast views). Vertices may be numpy or
    torch on any device. ``compile``: wrap the bind in ``torch.compile`` (fuses it into a few kernels; "auto" =
    on CUDA only; the first call compiles (seconds), and so does the first call with another batch size, after which
    the batch size is left dynamic). The avatar's tensors are read when the binder is built; build a new one after
    changing the avatar.
    """

    def __init__(self, avatar: GaussianAvatar, device=None, compile="auto"):
        avatar.validate()
        self.device = torch.device(device) if device is not None else avatar.means.device
        with torch.no_grad():
            f = dict(device=self.device, dtype=torch.float32)
            self.faces_flat = avatar.faces.to(self.device, torch.long).reshape(-1).contiguous()
            self.parent = avatar.parent.to(self.device, torch.long).contiguous()
            self.constants = bind_constants(avatar.means.detach().to(**f), avatar.log_scales.detach().to(**f),
                                            avatar.quats.detach().to(**f))
            self.opacities = torch.sigmoid(avatar.opacity_logits.detach().to(**f)).contiguous()
            self.sh = avatar.sh.detach().to(**f).contiguous()
        self.num_vertices = int(avatar.faces.max()) + 1
        if compile == "auto":
            compile = self.device.type == "cuda"
        self.compiled = bool(compile)
        self._bind = torch.compile(bind_fused) if self.compiled else bind_fused

    def __len__(self) -> int:
        return self.parent.shape[0]

    def __call__(self, vertices) -> WorldGaussians:
        v = torch.as_tensor(vertices)
        if v.dim() not in (2, 3) or v.shape[-1] != 3 or v.shape[-2] < self.num_vertices:
            raise ValueError(f"vertices has shape {tuple(v.shape)}; expected [V >= {self.num_vertices}, 3] or "
                             f"[B, V, 3]")
        v = v.to(self.device, torch.float32, non_blocking=True)
        with torch.no_grad():
            m, s, q = self._bind(v, self.faces_flat, self.parent, *self.constants)
        opac, sh = self.opacities, self.sh
        if v.dim() == 3:
            opac, sh = opac.expand(v.shape[0], -1), sh.expand(v.shape[0], -1, -1, -1)
        return WorldGaussians(m, s, q, opac, sh)


def save_avatar(path, avatar: GaussianAvatar) -> None:
    """Write the avatar as safetensors (format in ``avatar_io``)."""
    from .avatar_io import save_avatar as _save
    _save(path, avatar)


def load_avatar(path, faces=None, head: str | None = None) -> GaussianAvatar:
    """Read and validate an avatar file; optionally check it matches a head's faces [F, 3] / name."""
    from .avatar_io import load_avatar as _load
    return _load(path, faces=faces, head=head)
