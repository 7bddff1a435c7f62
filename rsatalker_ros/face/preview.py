"""Quick flat-shaded previews of heads (matplotlib, painter's algorithm): used for the README figure and checks.

Not a renderer for the avatar (see rsatalker_ros.render); it only needs numpy and matplotlib.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rsatalker_ros.face.arkit import ARKIT52_INDEX
from rsatalker_ros.face.head_model import HeadModel
from rsatalker_ros.face.regions import LABEL_NAMES

LABEL_COLORS = {
    "skin": (0.87, 0.70, 0.60), "lips": (0.74, 0.40, 0.42), "eye_white": (0.95, 0.95, 0.93),
    "iris": (0.30, 0.45, 0.60), "pupil": (0.05, 0.05, 0.05), "mouth_inside": (0.45, 0.15, 0.17),
    "tongue": (0.80, 0.40, 0.45), "teeth": (0.95, 0.94, 0.88), "eyebrow": (0.35, 0.25, 0.20),
    "scalp": (0.40, 0.30, 0.25), "eye_socket": (0.30, 0.15, 0.15), "ear": (0.85, 0.66, 0.57),
    "eyelid": (0.84, 0.64, 0.56), "nostril": (0.40, 0.20, 0.20),
}

# named example expressions: (ARKit weights, jaw, neck) for the default heads
EXAMPLE_EXPRESSIONS: dict[str, tuple[dict[str, float], tuple, tuple]] = {
    "neutral": ({}, (0, 0, 0), (0, 0, 0)),
    "jawOpen": ({"jawOpen": 0.8}, (0, 0, 0), (0, 0, 0)),
    "smile": ({"mouthSmileLeft": 0.9, "mouthSmileRight": 0.9, "cheekSquintLeft": 0.4, "cheekSquintRight": 0.4},
              (0, 0, 0), (0, 0, 0)),
    "surprise": ({"browInnerUp": 0.9, "browOuterUpLeft": 0.8, "browOuterUpRight": 0.8, "eyeWideLeft": 0.7,
                  "eyeWideRight": 0.7, "jawOpen": 0.4, "mouthFunnel": 0.3}, (0, 0, 0), (0, 0, 0)),
    "blink+frown": ({"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0, "browDownLeft": 0.8, "browDownRight": 0.8,
                     "mouthFrownLeft": 0.7, "mouthFrownRight": 0.7}, (0, 0, 0), (0, 0, 0)),
    "jaw+neck": ({}, (0.3, 0, 0), (0.1, 0.35, 0)),
}


def arkit_motion(head: HeadModel, weights: dict[str, float], jaw=(0, 0, 0), neck=(0, 0, 0), eyes=(0,) * 6):
    """A one-frame motion [1, 64] for an arkit52 head from named ARKit weights and rotations (radians)."""
    if head.basis != "arkit52":
        raise ValueError(f"arkit_motion needs an arkit52 head, got {head.basis}")
    m = torch.zeros(1, head.layout.dim)
    for name, w in weights.items():
        m[0, ARKIT52_INDEX[name]] = w
    m[0, head.layout.jaw] = torch.tensor(jaw, dtype=torch.float32)
    m[0, head.layout.neck] = torch.tensor(neck, dtype=torch.float32)
    m[0, head.layout.eyes] = torch.tensor(eyes, dtype=torch.float32)
    return m


def draw_mesh(ax, verts: np.ndarray, faces: np.ndarray, colors: np.ndarray, yaw_deg: float = 20.0) -> None:
    """Draw a mesh seen from +z (front), turned by yaw about y; verts [V, 3], faces [F, 3], colors [F, 3]."""
    from matplotlib.collections import PolyCollection
    c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    v = verts @ rot.T
    tri = v[faces]                                                            # [F, 3, 3]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True).clip(1e-12)
    visible = n[:, 2] > 0
    light = np.array([0.3, 0.4, 1.0]) / np.linalg.norm([0.3, 0.4, 1.0])
    shade = 0.35 + 0.65 * np.clip(n @ light, 0, 1)
    order = np.argsort(tri[:, :, 2].mean(1))
    order = order[visible[order]]
    col = np.clip(colors[order] * shade[order, None], 0, 1)
    ax.add_collection(PolyCollection(tri[order, :, :2], facecolors=col, edgecolors=col, linewidths=0.2))
    ax.set_xlim(v[:, 0].min() - 0.01, v[:, 0].max() + 0.01)
    ax.set_ylim(v[:, 1].min() - 0.01, v[:, 1].max() + 0.01)
    ax.set_aspect("equal")
    ax.axis("off")


def face_colors(head: HeadModel) -> np.ndarray:
    """Per-triangle RGB [F, 3] from the vertex labels (skin colour when the head has none)."""
    faces = head.faces.cpu().numpy()
    if head.vertex_labels is None:
        return np.tile(np.array(LABEL_COLORS["skin"]), (len(faces), 1))
    palette = np.array([LABEL_COLORS[n] for n in LABEL_NAMES])
    lab = head.vertex_labels.cpu().numpy()[faces]                             # [F, 3]
    # a triangle takes the label most of its corners have (first corner on ties)
    pick = np.where(lab[:, 1] == lab[:, 2], lab[:, 1], lab[:, 0])
    return palette[pick]


def render_grid(heads: list[HeadModel], out_path: str | Path, expressions=EXAMPLE_EXPRESSIONS,
                dpi: int = 110) -> Path:
    """Write a PNG grid: one row per head, one column per named expression."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(expressions)
    fig, axes = plt.subplots(len(heads), len(names), figsize=(2.2 * len(names), 2.8 * len(heads)), squeeze=False)
    for r, head in enumerate(heads):
        cols = face_colors(head)
        for c, name in enumerate(names):
            w, jaw, neck = expressions[name]
            with torch.no_grad():
                v = head.from_motion(arkit_motion(head, w, jaw, neck))[0].numpy()
            draw_mesh(axes[r, c], v, head.faces.numpy(), cols)
            axes[r, c].set_title(f"{head.name}\n{name}" if c == 0 else name, fontsize=9)
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return out_path
