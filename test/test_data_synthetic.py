import json
from dataclasses import asdict

import numpy as np
import pytest

from rsatalker_ros.data.behaviour import behaviour_stats, nod_frames
from rsatalker_ros.data.conversation import JAW_RAD_PER_OPEN, ConversationConfig, generate_conversation
from rsatalker_ros.data.dataset import list_clips, load_clip
from rsatalker_ros.data.espeak import Voice, synthesize
from rsatalker_ros.data.synthetic import generate_clip, generate_dataset
from rsatalker_ros.data.visemes import mouth_blendshapes, visemes_for
from rsatalker_ros.face.arkit import ARKIT52_INDEX as IX
from rsatalker_ros.motion.layout import ARKIT_LAYOUT
from rsatalker_ros.social.relation import Hierarchy, Kinship, Relation


def test_phoneme_events_are_monotonic_and_inside_the_audio():
    for voice in (Voice("en-us", "f2", rate=180), Voice("en-gb-x-rp", "m4", rate=140, pitch=30)):
        u = synthesize("Well, maybe we could meet at the station tomorrow morning?", voice)
        assert u.wave.dtype == np.float32 and 1.5 < u.wave.shape[0] / 16000 < 6
        starts = [p.start for p in u.phonemes]
        assert starts == sorted(starts) and len(u.phonemes) > 30
        assert all(0 <= p.start < p.end <= u.wave.shape[0] for p in u.phonemes)
        assert u.phonemes[-1].end == u.wave.shape[0]
        # speech phonemes carry the energy; the audio outside them is quiet
        inside = np.zeros(u.wave.shape[0], bool)
        for p in u.phonemes:
            if not p.is_pause:
                inside[p.start:p.end] = True
        assert (u.wave[inside] ** 2).sum() > 0.97 * (u.wave ** 2).sum()


def test_bad_voice_and_text_raise():
    with pytest.raises(ValueError, match="no voice"):
        synthesize("hello", Voice("xx-nolanguage"))
    with pytest.raises(ValueError, match="rate"):
        synthesize("hello", Voice(rate=20))
    with pytest.raises(ValueError, match="text"):
        synthesize("   ")


def test_bilabials_close_and_rounded_vowels_pucker():
    assert visemes_for("m") == ("PP",) and visemes_for("u:") == ("UH",) and visemes_for("aI") == ("AA", "IH")
    u = synthesize("mama pop boom", Voice("en-us", "m1", rate=120))
    t = -(-u.wave.shape[0] // 640)
    wave = np.pad(u.wave, (0, t * 640 - u.wave.shape[0]))
    segs = [(p.symbol, p.start, p.end) for p in u.phonemes]
    m = mouth_blendshapes(segs, wave, t)
    frame = lambda p: min(t - 1, (p.start + p.end) // 2 // 640)  # noqa: E731
    bil = [frame(p) for p in u.phonemes if p.symbol in ("m", "p", "b") and p.end - p.start > 640]
    vow = [frame(p) for p in u.phonemes if visemes_for(p.symbol)[0] == "AA"]
    rounded = [frame(p) for p in u.phonemes if p.symbol == "u:"]
    assert bil and vow and rounded
    assert np.mean([m[f, IX["mouthPressLeft"]] for f in bil]) > 0.2
    assert np.mean([m[f, IX["mouthClose"]] / max(m[f, IX["jawOpen"]], 1e-6) for f in bil]) > 0.6
    assert np.mean([m[f, IX["jawOpen"]] for f in vow]) > 2 * np.mean([m[f, IX["jawOpen"]] for f in bil])
    assert np.mean([m[f, IX["mouthPucker"]] for f in rounded]) > 0.3
    assert (m[:, IX["mouthClose"]] <= m[:, IX["jawOpen"]] + 1e-6).all()


def test_clip_is_consistent_and_jaw_follows_speech_energy():
    c = generate_clip("train", 1, seed=3, seconds=10.0)
    c.validate()
    assert c.n_frames == 250 and c.basis == "arkit52"
    for p in c.participants:
        m = c.motion[p]
        assert m.shape == (250, ARKIT_LAYOUT.dim)
        a = c.audio[p].reshape(250, 640)
        energy = np.sqrt((a ** 2).mean(1))
        jaw = m[:, IX["jawOpen"]]
        assert np.corrcoef(energy, jaw)[0, 1] > 0.6
        sp = c.speaking[p]
        assert np.corrcoef(energy[sp], jaw[sp])[0, 1] > 0.4            # within speech too, not just on/off
        assert jaw[~sp].mean() < 0.5 * jaw[sp].mean()
        assert np.allclose(m[:, ARKIT_LAYOUT.jaw][:, 0], JAW_RAD_PER_OPEN * jaw, atol=1e-6)
        assert (m[:, IX["eyeBlinkLeft"]] > 0.9).any()                   # blinks happen
    # turns alternate: both participants speak, mostly not at the same time
    both = c.speaking["A"] & c.speaking["B"]
    assert c.speaking["A"].mean() > 0.15 and c.speaking["B"].mean() > 0.15 and both.mean() < 0.2


@pytest.mark.slow
def test_dataset_is_reproducible_from_its_command(tmp_path):
    import subprocess
    import sys
    code = ("import sys; from rsatalker_ros.data.synthetic import generate_dataset; "
            "generate_dataset(sys.argv[1], 2, 0, 0, 3.0, seed=11)")
    # the two runs side by side (each process spends seconds importing before it generates)
    runs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / f"run{k}")], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for k in (1, 2)]
    for run in runs:
        out, _ = run.communicate(timeout=120)
        assert run.returncode == 0, out[-3000:]
    assert len(list_clips(tmp_path / "run1", "train")) == len(list_clips(tmp_path / "run2", "train")) == 2
    for split in ("train", "val"):
        for d1, d2 in zip(list_clips(tmp_path / "run1", split), list_clips(tmp_path / "run2", split)):
            a, b = load_clip(d1), load_clip(d2)
            assert a.relation == b.relation
            for p in a.participants:
                assert np.array_equal(a.motion[p], b.motion[p]) and np.array_equal(a.audio[p], b.audio[p])


def _stats(relation, n_clips, seed):
    rng = np.random.default_rng(seed)
    out = {}
    for k in range(n_clips):
        c = generate_conversation(relation, rng, f"s{k}", ConversationConfig(seconds=12.0))
        for p in c.participants:
            out.setdefault(relation.direction_for(p).name, []).append(asdict(behaviour_stats(c, p)))
    return {d: {key: float(np.mean([s[key] for s in v])) for key in v[0]} for d, v in out.items()}


def test_listener_behaviour_differs_between_relationships():
    boss = _stats(Relation(Kinship.NON_BLOOD, Hierarchy.UNEQUAL, "A"), 6, 0)
    junior, senior = boss["JUNIOR"], boss["SENIOR"]
    assert junior["nod_rate"] > 1.5 * senior["nod_rate"]
    assert junior["gaze_at_partner"] > senior["gaze_at_partner"] + 0.2
    assert junior["smile"] > senior["smile"]
    kin = _stats(Relation(Kinship.BLOOD, Hierarchy.EQUAL), 5, 1)["PEER"]
    friends = _stats(Relation(Kinship.NON_BLOOD, Hierarchy.EQUAL), 5, 2)["PEER"]
    assert kin["duchenne"] > friends["duchenne"] + 0.1                  # warmer smiles among kin
    assert kin["head_motion"] > friends["head_motion"]                  # kin move more freely


def test_nod_detector_counts_nods_not_slow_drift():
    fps = 25
    t = np.arange(20 * fps) / fps
    drift = 0.05 * np.sin(2 * np.pi * 0.15 * t)
    pitch = drift.copy()
    for s in (3.0, 8.0, 14.0):  # three nods of two cycles each
        k = (t >= s) & (t < s + 1.0)
        pitch[k] += 0.08 * np.sin(np.pi * (t[k] - s) / 0.5) ** 2
    assert len(nod_frames(pitch, fps)) == 3
    assert len(nod_frames(drift, fps)) == 0


def test_generate_dataset_balanced(tmp_path):
    generate_dataset(tmp_path, n_train=8, n_val=4, n_test=0, seconds_per_clip=3.0, seed=5)
    train = list_clips(tmp_path, "train")
    assert len(train) == 8 and len(list_clips(tmp_path, "val")) == 4 and list_clips(tmp_path, "test") == []
    clips = [load_clip(d) for d in train]
    classes = [c.relation.class_index for c in clips]
    assert sorted(classes) == [0, 0, 1, 1, 2, 2, 3, 3]
    seniors = {c.relation.senior for c in clips if c.relation.hierarchy == Hierarchy.UNEQUAL}
    assert seniors == {"A", "B"}
    info = json.loads((tmp_path / "dataset.json").read_text())
    assert info["clips_per_class"]["train"] == [2, 2, 2, 2]
