"""Face layer: FLAME-style linear blend skinning, the safe FLAME loader and the baked default heads."""

from rsatalker_ros.face.head_model import DEFAULT_HEADS, HeadModel, load_head

__all__ = ["DEFAULT_HEADS", "HeadModel", "load_head"]
