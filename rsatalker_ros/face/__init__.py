"""Face layer: FLAME-style linear blend skinning, the safe FLAME loader and the baked default heads.

The names below load on first use (PEP 562), so a process that needs only the torch-free parts of the face layer
(``face.head_data``: the conversation and audio nodes' input limits) does not import torch for them."""

__all__ = ["DEFAULT_HEADS", "HeadModel", "load_head"]


def __getattr__(name: str):
    if name in __all__:
        from rsatalker_ros.face import head_model
        return getattr(head_model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
