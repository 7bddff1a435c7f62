import numpy as np
import pytest
from scipy.io import wavfile

from rsatalker_ros.data.dataset import list_clips, load_clip
from rsatalker_ros.data.dualtalk import import_dualtalk
from rsatalker_ros.data.espeak import Voice, synthesize
from rsatalker_ros.motion.layout import MotionLayout
from rsatalker_ros.social.relation import Hierarchy, Kinship, Relation


def _write_fake_clip(folder, name, t, rate, rng, speech):
    folder.mkdir(parents=True, exist_ok=True)
    for k, pid in enumerate(("speaker1", "speaker2")):
        n = int(round(t / 25 * rate)) + 37                        # audio a little longer than the motion
        x = rng.normal(0, 1e-4, n).astype(np.float32)
        if k == 0:
            x[: min(n, speech.shape[0])] += speech[:n]
        wavfile.write(folder / f"{name}_{pid}.wav", rate, x)   # DualTalk ships 32-bit float wavs
        np.savez(folder / f"{name}_{pid}.npz",
                 exp=rng.normal(0, 1, (t, 50)).astype(np.float32), pose=rng.normal(0, 0.1, (t, 6)).astype(np.float32),
                 shape=np.tile(rng.normal(0, 1, 100).astype(np.float32), (t, 1)),
                 tex=np.zeros((t, 50), np.float32), cam=np.zeros((t, 3), np.float32),
                 light=np.zeros((t, 9, 3), np.float32))


def test_import_fake_dualtalk_folder(tmp_path):
    rng = np.random.default_rng(0)
    speech = synthesize("Hello there, how have you been lately?", Voice("en-us", "f1")).wave
    src = tmp_path / "DualTalk" / "data"
    _write_fake_clip(src / "train", "clipA_001", 80, 16000, rng, speech)
    _write_fake_clip(src / "test", "clipB_002", 60, 16000, rng, speech)
    _write_fake_clip(src / "ood", "clipC_003", 50, 22050, rng, speech)     # another rate: resampled
    (src / "train" / "lonely_speaker1.npz").write_bytes(b"")               # incomplete clip: ignored
    rel = {"clipA_001": Relation(Kinship.BLOOD, Hierarchy.UNEQUAL, "speaker2", "mother-son")}
    out = import_dualtalk(src, tmp_path / "ours", relations=rel)
    assert len(out) == 3
    train, test = list_clips(tmp_path / "ours", "train"), list_clips(tmp_path / "ours", "test")
    assert [p.name for p in train] == ["clipA_001"]
    assert sorted(p.name for p in test) == ["clipB_002", "ood-clipC_003"]

    c = load_clip(train[0])
    lay = MotionLayout.for_basis("flame50")
    assert c.basis == "flame50" and c.participants == ("speaker1", "speaker2") and c.n_frames == 80
    assert c.relation == rel["clipA_001"]
    z = np.load(src / "train" / "clipA_001_speaker1.npz")
    m = c.motion["speaker1"]
    assert np.array_equal(m[:, lay.expression], z["exp"])
    assert np.array_equal(m[:, lay.jaw], z["pose"][:, 3:6]) and np.array_equal(m[:, lay.neck], z["pose"][:, 0:3])
    assert np.all(m[:, lay.eyes] == 0)
    assert c.audio["speaker1"].shape == (80 * 640,)
    assert np.array_equal(c.extras["shape_speaker1"], z["shape"][0])
    # speaking flags come from the audio: speaker1 talks at the start, speaker2 never
    assert c.speaking["speaker1"][5:30].mean() > 0.6 and not c.speaking["speaker2"].any()

    ood = load_clip([p for p in test if p.name.startswith("ood")][0])
    assert ood.n_frames == 50 and ood.audio["speaker2"].shape == (50 * 640,)
    assert ood.relation.confidence == 0.0 and ood.relation.label == "unannotated"


def test_import_rejects_non_dualtalk_folder(tmp_path):
    with pytest.raises(ValueError, match="no DualTalk split"):
        import_dualtalk(tmp_path, tmp_path / "out")
    bad = tmp_path / "bad" / "train"
    bad.mkdir(parents=True)
    for pid in ("speaker1", "speaker2"):
        wavfile.write(bad / f"x_{pid}.wav", 16000, np.zeros(6400, np.float32))
        np.savez(bad / f"x_{pid}.npz", exp=np.zeros((10, 50), np.float32))
    with pytest.raises(ValueError, match="pose"):
        import_dualtalk(tmp_path / "bad", tmp_path / "out")
