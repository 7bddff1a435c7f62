"""Motion checkpoints: round trip, and clear errors for missing, corrupt, foreign or mismatched files."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from rsatalker_ros.motion.checkpoint import DEFAULT_CHECKPOINT, load_model, save_model
from rsatalker_ros.motion.config import MotionModelConfig
from rsatalker_ros.motion.model import SocialMotionModel


def tiny():
    torch.manual_seed(0)
    m = SocialMotionModel(MotionModelConfig(d_model=32, n_heads=2, window=8, n_query_tokens=2))
    m.set_normalization(torch.full((320,), -5.0), torch.full((320,), 2.0), torch.linspace(0, 1, 64),
                        torch.full((64,), 0.3))
    return m.eval()


def test_round_trip_same_outputs_and_info(tmp_path):
    m = tiny()
    path = save_model(m, tmp_path / "sub" / "m.safetensors", {"stage": 2, "note": "x"})
    m2, info = load_model(path)
    assert info == {"stage": 2, "note": "x"}
    assert m2.cfg == m.cfg and not m2.training
    x, pm = torch.randn(1, 12, 320), torch.randn(1, 12, 64)
    with torch.no_grad():
        a = m(x, x * 0.5, pm, torch.tensor([3]))
        b = m2(x, x * 0.5, pm, torch.tensor([3]))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(m2.motion_mean, torch.linspace(0, 1, 64))


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_model(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_model(bad)
    good = save_model(tiny(), tmp_path / "good.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_model(cut)


def test_foreign_and_mismatched_checkpoints(tmp_path):
    other = tmp_path / "avatar.safetensors"
    save_file({"x": torch.zeros(3)}, str(other), metadata={"format": "rsatalker_ros.avatar"})
    with pytest.raises(ValueError, match="not a rsatalker_ros.motion checkpoint"):
        load_model(other)
    m = tiny()
    sd = {k: v.contiguous() for k, v in m.state_dict().items()}
    cfg = m.cfg.to_dict()
    meta = {"format": "rsatalker_ros.motion", "format_version": "1", "config": json.dumps({**cfg, "d_model": 64})}
    wrong = tmp_path / "wrong.safetensors"
    save_file(sd, str(wrong), metadata=meta)
    with pytest.raises(ValueError, match="shape"):
        load_model(wrong)
    meta["config"] = json.dumps(cfg)
    sd.pop("out.bias")
    save_file(sd, str(wrong), metadata=meta)
    with pytest.raises(ValueError, match="missing"):
        load_model(wrong)
    meta["format_version"] = "99"
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(wrong), metadata=meta)
    with pytest.raises(ValueError, match="format_version"):
        load_model(wrong)
    meta["format_version"] = "1"
    meta["config"] = json.dumps({**cfg, "colour": 1})
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(wrong), metadata=meta)
    with pytest.raises(ValueError, match="unknown motion model config"):
        load_model(wrong)


def test_shipped_checkpoint_loads_small():
    assert DEFAULT_CHECKPOINT.is_file(), "run scripts/train_default_motion.sh to make the shipped checkpoint"
    assert DEFAULT_CHECKPOINT.stat().st_size < 8 * 2 ** 20
    model, info = load_model()
    assert info.get("stage") == 2 and model.cfg.motion_dim == 64 and model.cfg.basis == "arkit52"
    assert not model.cfg.share_queries
    assert model.cfg.lookahead_ms <= 80.0
    assert np.isfinite(model.motion_std.numpy()).all()
