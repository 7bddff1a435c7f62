"""Assets for node tests: the shipped files where they exist, else small valid stand-ins built from the heads."""

from pathlib import Path

ASSETS = Path(__file__).resolve().parents[2] / "rsatalker_ros" / "assets"


def avatar_path(head: str, tmp_dir) -> str:
    """The shipped avatar of ``head``, or one Gaussian per triangle of its neutral mesh (untrained, grey)."""
    shipped = ASSETS / "avatars" / f"{head}.safetensors"
    if shipped.is_file():
        return str(shipped)
    from rsatalker_ros.avatar.gaussians import GaussianAvatar, save_avatar
    from rsatalker_ros.face.head_model import load_head
    h = load_head(head)
    v = h.neutral()
    v = v[0] if v.dim() == 3 else v
    out = Path(tmp_dir) / f"{head}.safetensors"
    if not out.is_file():
        save_avatar(out, GaussianAvatar.init_from_mesh(v.numpy(), h.faces.numpy(), head=head))
    return str(out)


def neutral_vertices(head: str):
    from rsatalker_ros.face.head_model import load_head
    h = load_head(head)
    v = h.neutral()
    return (v[0] if v.dim() == 3 else v).numpy(), h


def motion_checkpoint(tmp_dir) -> str:
    """The shipped motion checkpoint, or a randomly initialised model of the default config (for tests of the
    node's plumbing, which hold for any weights)."""
    shipped = ASSETS / "checkpoints" / "motion_default.safetensors"
    if shipped.is_file():
        return str(shipped)
    import torch

    from rsatalker_ros.motion.checkpoint import save_model
    from rsatalker_ros.motion.config import MotionModelConfig
    from rsatalker_ros.motion.model import SocialMotionModel
    out = Path(tmp_dir) / "motion_random.safetensors"
    if not out.is_file():
        torch.manual_seed(0)
        save_model(SocialMotionModel(MotionModelConfig()).eval(), out, {"stage": "random init (test stand-in)"})
    return str(out)


def graph_overrides(tmp_dir, size: int) -> dict:
    """Parameter overrides for a test graph of alice and bob: the motion checkpoint, no rviz marker, small images
    from one render thread, each participant's avatar."""
    return {"motion": {"checkpoint": motion_checkpoint(tmp_dir), "marker_rate_hz": 0.0},
            "renderer": {"width": size, "height": size, "render_threads": 1},
            "renderer_alice": {"avatar": avatar_path("default_older", tmp_dir)},
            "renderer_bob": {"avatar": avatar_path("default_younger", tmp_dir)}}
