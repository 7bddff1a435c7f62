"""Evaluation end to end on a tiny synthetic set with tiny models: report, plots, baselines, errors."""

import json

import numpy as np
import pytest
import torch

from rsatalker_ros.cli.evaluate import main as evaluate_cli
from rsatalker_ros.eval.evaluate import generate_clip
from rsatalker_ros.motion.checkpoint import save_model
from rsatalker_ros.motion.config import MotionModelConfig
from rsatalker_ros.motion.model import SocialMotionModel


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from rsatalker_ros.data.synthetic import generate_dataset
    root = tmp_path_factory.mktemp("eval")
    generate_dataset(root / "data", 8, 0, 4, 4.0, seed=5)
    paths = []
    for i, share in enumerate((False, True)):
        torch.manual_seed(i)
        m = SocialMotionModel(MotionModelConfig(d_model=32, n_heads=2, window=8, n_query_tokens=2,
                                                share_queries=share))
        paths.append(save_model(m, root / f"m{i}.safetensors", {"stage": 2}))
    return root, paths


def test_evaluate_cli_writes_report_plots_and_json(setup):
    root, (p0, p1) = setup
    out = root / "report" / "eval.md"
    rc = evaluate_cli(["--data", str(root / "data"), "--model", f"full={p0}", "--model", f"shared={p1}",
                       "--out", str(out), "--images", str(root / "report" / "img"), "--json", str(root / "r.json"),
                       "--quiet"])
    assert rc == 0
    text = out.read_text()
    for row in ("| full |", "| shared |", "| mean motion |", "ground truth (probe ceiling)"):
        assert row in text
    for png in ("motion_metrics.png", "motion_example.png", "motion_relation_confusion.png"):
        assert (root / "report" / "img" / png).stat().st_size > 5000
        assert f"img/{png}" in text
    res = json.loads((root / "r.json").read_text())
    assert res["n_clips"] == 4
    for m in ("full", "shared", "mean motion"):
        assert set(res["metrics"][m]) >= {"LVE", "FDD", "FD-exp", "MSE-jaw"}
        assert all(np.isfinite(v) for v in res["metrics"][m].values())
        assert 0.0 <= res["relation_acc"][m] <= 1.0
    # the mean-motion baseline is constant: its listener features are the same for every class
    assert res["relation_acc"]["mean motion"] <= 0.5


def test_generate_clip_is_chunk_independent(setup):
    from rsatalker_ros.data.dataset import list_clips, load_clip
    from rsatalker_ros.motion.checkpoint import load_model
    root, (p0, _) = setup
    model, _ = load_model(p0)
    clip = load_clip(list_clips(root / "data", "test")[0])
    whole = generate_clip(model, clip)
    chunked = generate_clip(model, clip, chunk=700)
    for p in clip.participants:
        assert whole[p].shape == clip.motion[p].shape
        np.testing.assert_allclose(whole[p], chunked[p], atol=1e-5)


def test_evaluate_cli_errors(setup, tmp_path, capsys):
    root, (p0, _) = setup
    assert evaluate_cli(["--data", str(tmp_path), "--model", str(p0), "--out", str(tmp_path / "x.md"),
                         "--quiet"]) == 2
    assert "no clips" in capsys.readouterr().err
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"nonsense")
    assert evaluate_cli(["--data", str(root / "data"), "--model", str(bad), "--out", str(tmp_path / "x.md"),
                         "--quiet"]) == 2
    assert "safetensors" in capsys.readouterr().err
