import json

import numpy as np
import pytest

from rsatalker_ros.data.dataset import Clip, list_clips, load_clip, read_relation, save_clip
from rsatalker_ros.motion.layout import ARKIT_LAYOUT
from rsatalker_ros.social.relation import Hierarchy, Kinship, Relation


def _clip(t=30, clip_id="c0001"):
    rng = np.random.default_rng(0)
    pids = ("A", "B")
    return Clip(clip_id, pids,
                audio={p: (0.3 * rng.standard_normal(t * 640)).clip(-1, 1).astype(np.float32) for p in pids},
                motion={p: rng.random((t, ARKIT_LAYOUT.dim)).astype(np.float32) for p in pids},
                speaking={p: rng.random(t) > 0.5 for p in pids},
                relation=Relation(Kinship.BLOOD, Hierarchy.UNEQUAL, "B", "father-son"),
                basis="arkit52", heads={"A": "", "B": "anny_male"},
                extras={"shape_A": np.arange(5, dtype=np.float32)}, meta={"source": "test"})


def test_round_trip(tmp_path):
    c = _clip()
    d = save_clip(c, tmp_path / "train" / c.clip_id)
    back = load_clip(d)
    assert back.clip_id == c.clip_id and back.participants == c.participants
    assert back.relation == c.relation and back.relation.query_index_for("B") == 1
    assert back.heads == c.heads and back.basis == "arkit52" and back.fps == 25 and back.meta == c.meta
    for p in c.participants:
        assert np.array_equal(back.motion[p], c.motion[p])
        assert np.array_equal(back.speaking[p], c.speaking[p])
        assert back.audio[p].dtype == np.float32 and back.audio[p].shape == (30 * 640,)
        assert np.abs(back.audio[p] - c.audio[p]).max() < 1.0 / 16384      # 16-bit PCM on disk
    assert np.array_equal(back.extras["shape_A"], c.extras["shape_A"])
    assert list_clips(tmp_path, "train") == [d] and list_clips(tmp_path, "val") == []
    assert read_relation(d) == c.relation


def test_corrupt_and_inconsistent_files_raise_clear_errors(tmp_path):
    c = _clip()
    d = save_clip(c, tmp_path / "x")
    (d / "B.npz").write_bytes(b"this is not a zip file at all")
    with pytest.raises(ValueError, match=r"B\.npz.*corrupt"):
        load_clip(d)

    d = save_clip(c, tmp_path / "y")
    (d / "A.wav").write_bytes(b"RIFF....garbage")
    with pytest.raises(ValueError, match=r"A\.wav"):
        load_clip(d)

    d = save_clip(c, tmp_path / "z")
    meta = json.loads((d / "clip.json").read_text())
    meta["n_frames"] = 31
    (d / "clip.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="n_frames"):
        load_clip(d)

    (d / "clip.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt JSON"):
        load_clip(d)
    with pytest.raises(ValueError, match="no clip.json"):
        load_clip(tmp_path / "nothing_here")


def test_validation_on_save():
    c = _clip()
    c.audio["A"] = c.audio["A"][:-1]
    with pytest.raises(ValueError, match="exactly 30 frames"):
        c.validate()
    c = _clip()
    c.motion["B"] = c.motion["B"][:, :62]
    with pytest.raises(ValueError, match=r"\[T, 64\]"):
        c.validate()
    c = _clip()
    c.relation = Relation(Kinship.BLOOD, Hierarchy.UNEQUAL, "C")
    with pytest.raises(ValueError, match="senior"):
        c.validate()
    with pytest.raises(ValueError, match="split"):
        list_clips("/tmp", "training")
