"""Averaging motion checkpoints (model soup): the weighted mean of the weights, and clear errors for inputs that
cannot be averaged."""

import re

import pytest
import torch

from rsatalker_ros.cli.average_checkpoints import main
from rsatalker_ros.motion.checkpoint import load_model, save_model
from rsatalker_ros.motion.config import MotionModelConfig
from rsatalker_ros.motion.model import SocialMotionModel


def tiny(seed=0, d_model=32):
    torch.manual_seed(0)
    m = SocialMotionModel(MotionModelConfig(d_model=d_model, n_heads=2, window=8, n_query_tokens=2))
    m.set_normalization(torch.full((320,), -5.0), torch.full((320,), 2.0), torch.linspace(0, 1, 64),
                        torch.full((64,), 0.3))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():          # a "fine-tune": the shared init moved by a seed-dependent step
        for p in m.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return m.eval()


def test_weighted_mean_of_two_fine_tunes(tmp_path, capsys):
    a, b = tiny(1), tiny(2)
    pa = save_model(a, tmp_path / "a.safetensors", {"step": 10, "data": "rooms"})
    pb = save_model(b, tmp_path / "b.safetensors", {"step": 20, "data": "clean"})
    out = tmp_path / "soup" / "m.safetensors"
    copy = tmp_path / "shipped" / "m.safetensors"
    assert main([str(pa), str(pb), "--weights", "0.25", "0.75", "--out", str(out), "--copy-to", str(copy)]) == 0
    soup, info = load_model(out)
    sa, sb = a.state_dict(), b.state_dict()
    for k, v in soup.state_dict().items():
        torch.testing.assert_close(v, 0.25 * sa[k] + 0.75 * sb[k])
    assert not torch.equal(soup.state_dict()["queries"], sa["queries"])
    assert [(d["path"], d["weight"], d["step"]) for d in info["average_of"]] == [(str(pa), 0.25, 10),
                                                                                (str(pb), 0.75, 20)]
    assert copy.read_bytes() == out.read_bytes()
    # the averaged model runs and differs from both inputs
    x, pm = torch.randn(1, 12, 320), torch.randn(1, 12, 64)
    with torch.no_grad():
        ys = [m(x, x * 0.5, pm, torch.tensor([3])) for m in (soup, a, b)]
    assert torch.isfinite(ys[0]).all() and not torch.allclose(ys[0], ys[1]) and not torch.allclose(ys[0], ys[2])
    # default weights: uniform
    assert main([str(pa), str(pb), "--out", str(tmp_path / "u.safetensors")]) == 0
    torch.testing.assert_close(load_model(tmp_path / "u.safetensors")[0].state_dict()["queries"],
                               0.5 * sa["queries"] + 0.5 * sb["queries"])


@pytest.mark.parametrize("weights, message", [(["0.5", "0.6"], "sum to 1.1; expected 1"),
                                              (["1.0"], "got 1 weights for 2 checkpoints"),
                                              (["1.5", "-0.5"], "outside \\[0, 1\\]")])
def test_bad_weights_are_refused(tmp_path, capsys, weights, message):
    pa = save_model(tiny(1), tmp_path / "a.safetensors")
    pb = save_model(tiny(2), tmp_path / "b.safetensors")
    out = tmp_path / "m.safetensors"
    assert main([str(pa), str(pb), "--weights", *weights, "--out", str(out)]) == 2
    assert re.search(message, capsys.readouterr().err) and not out.exists()


def test_checkpoints_that_do_not_fit_are_refused(tmp_path, capsys):
    pa = save_model(tiny(1), tmp_path / "a.safetensors")
    other_size = save_model(tiny(2, d_model=48), tmp_path / "wide.safetensors")
    other_stats = tiny(3)
    other_stats.set_normalization(torch.zeros(320), torch.ones(320), torch.zeros(64), torch.ones(64))
    pstats = save_model(other_stats, tmp_path / "stats.safetensors")
    out = tmp_path / "m.safetensors"
    cases = [([pa, other_size], "model config differs from .* in \\['d_model'\\]"),
             ([pa, pstats], "normalisation statistics 'feat_mean' differ"),
             ([pa, tmp_path / "missing.safetensors"], "does not exist"),
             ([pa], "need at least 2 checkpoints")]
    for paths, message in cases:
        assert main([*map(str, paths), "--out", str(out)]) == 2
        assert re.search(message, capsys.readouterr().err), message
        assert not out.exists()
