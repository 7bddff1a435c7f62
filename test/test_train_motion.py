"""Motion training stages 1 and 2: a tiny run lowers the loss and changes the weights; resume; configs; CLI."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from rsatalker_ros.cli.train import main as train_cli
from rsatalker_ros.motion.checkpoint import load_model
from rsatalker_ros.motion.config import NEUTRAL_QUERY
from rsatalker_ros.train.config import TrainConfig, parse_overrides
from rsatalker_ros.train.motion_trainer import train

ROOT = Path(__file__).resolve().parent.parent
TINY = {"d_model": 32, "n_heads": 2, "window": 8, "n_query_tokens": 2, "n_encoder_layers": 1}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from rsatalker_ros.data.synthetic import generate_dataset
    root = tmp_path_factory.mktemp("motion_data")
    generate_dataset(root, 12, 2, 0, 4.0, seed=3)   # enough speakers for a tiny model to generalise a little
    return root


def history(out):
    import json
    h = json.loads((Path(out) / "history.json").read_text())
    return [e["train"] for e in h if "train" in e], [e["val"] for e in h if "val" in e]


@pytest.mark.slow
def test_stage1_then_stage2_lower_loss_change_weights_and_resume(data, tmp_path):
    s1 = TrainConfig(stage=1, data=str(data), out=str(tmp_path / "s1"), model=TINY, steps=60, batch_size=4,
                     window_frames=50, lr=3e-3, warmup_steps=5, eval_every=20, checkpoint_every=60,
                     partner_inputs=False, relation_queries=False)    # (stage 2 below saves a mid-run checkpoint)
    p1 = train(s1, progress=False)
    tr, va = history(s1.out)
    assert np.mean(tr[-2:]) < 0.8 * tr[0], tr          # tr[0]: the first step's loss
    assert va[-1] < va[0], va                          # va[0]: before training
    assert (tmp_path / "s1" / "loss_curve.png").stat().st_size > 5000
    m1, info1 = load_model(p1)
    assert info1["stage"] == 1 and info1["step"] == 60
    # stage 2 from stage 1: relationship query sets start as copies of the neutral one, then diverge
    s2 = TrainConfig(stage=2, data=str(data), out=str(tmp_path / "s2"), init=str(p1), steps=20, batch_size=4,
                     window_frames=50, lr=3e-3, warmup_steps=2, eval_every=10, checkpoint_every=10)
    train(s2, progress=False)
    m2, info2 = load_model(tmp_path / "s2" / "model.safetensors")
    assert info2["stage"] == 2 and info2["init"] == str(p1)
    q = m2.queries.detach()
    assert not torch.allclose(q[:NEUTRAL_QUERY], m1.queries[NEUTRAL_QUERY].expand_as(q[:NEUTRAL_QUERY]))
    changed = [k for k, v in m2.state_dict().items() if not torch.equal(v, m1.state_dict()[k])]
    assert "out.weight" in changed and "fuse_att.q.weight" in changed
    torch.testing.assert_close(m2.motion_mean, m1.motion_mean)   # normalisation kept from stage 1
    # resume to 30 steps: continues from step 20, not from scratch
    s2.steps = 30
    train(s2, resume=True, progress=False)
    m3, info3 = load_model(tmp_path / "s2" / "model.safetensors")
    assert info3["step"] == 30
    steps = [e["step"] for e in __import__("json").loads((tmp_path / "s2" / "history.json").read_text())]
    assert steps == sorted(steps) and steps[-1] == 30 and 20 in steps
    assert not torch.equal(m3.out.weight, m2.out.weight)


def test_shipped_configs_parse_and_every_key_is_commented():
    for name, stage in (("train_stage1.yaml", 1), ("train_stage2.yaml", 2), ("train_stage2_rooms.yaml", 2),
                        ("train_stage2_rooms_clean.yaml", 2)):
        path = ROOT / "config" / name
        cfg = TrainConfig.from_yaml(path)
        assert cfg.stage == stage
        for line in path.read_text().splitlines():
            if re.match(r"^\s*[A-Za-z_]+:", line):
                assert "#" in line, f"{name}: key without a comment: {line!r}"
    s1 = TrainConfig.from_yaml(ROOT / "config" / "train_stage1.yaml")
    assert not s1.partner_inputs and not s1.relation_queries
    s2 = TrainConfig.from_yaml(ROOT / "config" / "train_stage2.yaml", parse_overrides(["model.share_queries=true"]))
    assert s2.partner_inputs and s2.relation_queries and s2.model["share_queries"] is True


def test_bad_configs_raise(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown training config keys"):
        TrainConfig.from_dict({"stepz": 3})
    with pytest.raises(ValueError, match="stage"):
        TrainConfig(stage=3)
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["steps"])
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"stage": 1, "lr": 1e-3, "colour": "red"}))
    assert train_cli(["--config", str(bad)]) == 2
    assert "colour" in capsys.readouterr().err
    assert train_cli(["--config", str(tmp_path / "missing.yaml")]) == 2
    empty = tmp_path / "empty"
    assert train_cli(["--config", str(ROOT / "config" / "train_stage1.yaml"), "--data", str(empty),
                      "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "no clips" in capsys.readouterr().err


@pytest.mark.slow
def test_lip_closure_loss_closes_the_lips_where_the_target_is_closed(data, tmp_path):
    """Two identical short runs from the same model, one with the lip-closure term: that one ends with lips nearer
    closed on the target-closed frames (bilabials, rest) of the training windows, measured on the posed head."""
    from rsatalker_ros.eval.metrics import LipOpening
    from rsatalker_ros.face.head_model import load_head
    from rsatalker_ros.train.data import fixed_batches, load_split, silence_features
    from rsatalker_ros.train.motion_trainer import lip_losses, make_inputs
    base = dict(stage=1, data=str(data), batch_size=4, window_frames=50, lr=3e-3, warmup_steps=2,
                eval_every=100, checkpoint_every=100, partner_inputs=False, relation_queries=False)
    init = train(TrainConfig(**base, model=TINY, out=str(tmp_path / "init"), steps=15), progress=False)
    runs = {w: load_model(train(TrainConfig(**base, out=str(tmp_path / f"w{w}"), init=str(init), steps=15,
                                            lip_closure_weight=w), progress=False))[0] for w in (0.0, 0.5)}
    opening = LipOpening(load_head("default_older"))
    cfg = TrainConfig(**base)
    batches = fixed_batches(load_split(data, "train", progress=False), 50, 4)[:3]
    silence = torch.from_numpy(silence_features(50))
    closure = {}
    with torch.no_grad():
        for w, m in runs.items():
            m.eval()
            closure[w] = float(np.mean([float(lip_losses(opening, m(*make_inputs(m, b, cfg, silence, False)),
                                                         b["motion"], 1.0)[0]) for b in batches]))   # closure term
    assert closure[0.5] < 0.8 * closure[0.0], closure
    h = __import__("json").loads((tmp_path / "w0.5" / "history.json").read_text())
    assert any("lip_closure_mm2" in e for e in h)
    assert not torch.equal(runs[0.5].out.weight, runs[0.0].out.weight)


def test_lip_losses_closure_charges_opening_at_closed_targets_and_match_charges_shrunk_openings():
    """The closure term costs only lips left open where the target's are shut (a bilabial beside open vowels); the
    opening term also costs an open vowel shrunk to half its size, which the closure term ignores."""
    from rsatalker_ros.eval.metrics import LipOpening
    from rsatalker_ros.face.arkit import ARKIT52_INDEX
    from rsatalker_ros.face.head_model import load_head
    from rsatalker_ros.train.motion_trainer import lip_losses
    head = load_head("default_older")
    opening = LipOpening(head)
    jaw = torch.tensor([0.0, 0.0, 0.4, 0.4, 0.0, 0.4, 0.4, 0.0, 0.0, 0.0])   # vowel, /m/, vowel, rest
    target = torch.zeros(1, len(jaw), head.layout.dim)
    target[0, :, ARKIT52_INDEX["jawOpen"]] = jaw
    assert [float(v) for v in lip_losses(opening, target, target, 1.0)] == [0.0, 0.0]
    lips_open = target.clone()
    lips_open[0, 4, ARKIT52_INDEX["jawOpen"]] = 0.4          # the /m/ not closed
    closure, match = lip_losses(opening, lips_open, target, 1.0)
    assert closure > 10.0 and match > 0.0                    # mm^2: a ~20 mm opening on 1 of 6 closed frames
    shrunk = target.clone()
    shrunk[0, :, ARKIT52_INDEX["jawOpen"]] *= 0.5
    closure, match = lip_losses(opening, shrunk, target, 1.0)
    assert float(closure) == 0.0 and match > 1.0


def test_mix_data_adds_the_other_datasets_training_clips(data, tmp_path):
    cfg = TrainConfig(stage=1, data=str(data), out=str(tmp_path / "mix"), model=TINY, steps=1, batch_size=2,
                      window_frames=20, partner_inputs=False, relation_queries=False, mix_data=f"{data},{data}",
                      mix_clips=5)
    _, info = load_model(train(cfg, progress=False))
    assert info["train_clips"] == 12 + 5 + 5
