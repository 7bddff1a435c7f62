"""Small procedural meshes for tests and benchmarks (when no head model is at hand)."""

import numpy as np


def icosphere(subdivisions: int = 2, radius: float = 1.0):
    """Unit icosahedron subdivided ``subdivisions`` times, projected on a sphere.

    Returns (vertices [V, 3] float32, faces [F, 3] int64) with F = 20 * 4**subdivisions, outward winding
    (the normal (v1 - v0) x (v2 - v0) points away from the centre).
    """
    if subdivisions < 0 or subdivisions > 7:
        raise ValueError(f"subdivisions must be in 0..7, got {subdivisions}")
    t = (1.0 + 5 ** 0.5) / 2.0
    verts = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
             (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
             (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
             (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    v = [np.array(p, dtype=np.float64) / np.linalg.norm(p) for p in verts]
    f = np.array(faces, dtype=np.int64)
    for _ in range(subdivisions):
        cache = {}

        def mid(a, b):
            key = (min(a, b), max(a, b))
            if key not in cache:
                p = v[a] + v[b]
                v.append(p / np.linalg.norm(p))
                cache[key] = len(v) - 1
            return cache[key]

        nf = []
        for a, b, c in f:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            nf += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        f = np.array(nf, dtype=np.int64)
    vv = (np.stack(v) * radius).astype(np.float32)
    # make the winding outward
    tri = vv[f]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    flip = (n * tri.mean(1)).sum(-1) < 0
    f[flip] = f[flip][:, [0, 2, 1]]
    return vv, f
