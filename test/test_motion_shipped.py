"""Behaviour of the shipped motion checkpoint on unseen synthetic conversations (seed never used in training)."""

import numpy as np
import pytest
import torch

from rsatalker_ros.data.synthetic import generate_clip
from rsatalker_ros.eval.evaluate import generate_clip as run_model
from rsatalker_ros.face.arkit import ARKIT52_INDEX
from rsatalker_ros.motion.checkpoint import load_model
from rsatalker_ros.social.relation import Hierarchy, Kinship, Relation

pytestmark = pytest.mark.slow
UNSEEN_SEED = 4242     # scripts/train_default_motion.sh trains on seed 0


@pytest.fixture(scope="module")
def model():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_model()[0]
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def clips():
    return [generate_clip("test", i, UNSEEN_SEED, 10.0) for i in range(4)]


@pytest.fixture(scope="module")
def generated(model):
    """run_model(model, clip, relation), each (clip, relationship) generated once for the whole module."""
    done = {}

    def motion(clip, relation=None):
        key = (clip.clip_id, relation)
        if key not in done:
            done[key] = run_model(model, clip, relation=relation)
        return done[key]
    return motion


def frame_energy(wave: np.ndarray) -> np.ndarray:
    return np.sqrt((wave.reshape(-1, 640) ** 2).mean(1))


def test_mouth_opening_follows_speech_energy(model, clips, generated):
    jaw = ARKIT52_INDEX["jawOpen"]
    for clip in clips:
        out = generated(clip)
        for p in clip.participants:
            opening = out[p][:, jaw]
            energy = frame_energy(clip.audio[p])
            r = np.corrcoef(opening, energy)[0, 1]
            assert r > 0.6, f"{clip.clip_id}/{p}: jawOpen vs speech energy r = {r:.2f}"
            voiced = energy > 0.3 * energy.max()
            quiet = energy < 0.02 * energy.max()
            assert opening[voiced].mean() > opening[quiet].mean() + 0.05
    # silence on both sides: the mouth stays (nearly) closed
    silent = clips[0]
    from rsatalker_ros.motion.streaming import StreamingMotion
    sm = StreamingMotion(model, silent.relation, silent.participants[0], silent.participants[1])
    frames = sm.push(np.zeros(16000, np.float32), np.zeros(16000, np.float32)) + sm.flush()
    assert max(m[jaw] for _, m in frames) < 0.05


def listening_means(generated, clips, relation, dims):
    vals = []
    for clip in clips:
        out = generated(clip, relation)["A"]
        vals.append(out[~clip.speaking["A"]][:, dims].mean())
    return float(np.mean(vals))


def test_changing_only_the_relationship_changes_listener_motion(clips, generated):
    """Same audio, different relationship: the listener's behaviour follows the synthetic data's social priors
    (kin smile more warmly than a non-kin superior; rsatalker_ros/data/listener_priors.py)."""
    smile = [ARKIT52_INDEX["mouthSmileLeft"], ARKIT52_INDEX["mouthSmileRight"],
             ARKIT52_INDEX["cheekSquintLeft"], ARKIT52_INDEX["cheekSquintRight"]]
    kin_peer = Relation(Kinship.BLOOD, Hierarchy.EQUAL)
    boss = Relation(Kinship.NON_BLOOD, Hierarchy.UNEQUAL, senior="A")     # A listens as the superior
    a = listening_means(generated, clips, kin_peer, smile)
    b = listening_means(generated, clips, boss, smile)
    assert a > b + 0.03, f"kin peer listener smile {a:.3f} vs non-kin superior {b:.3f}"
    # the whole listener trajectory differs, not only its mean
    clip = clips[1]
    x = generated(clip, kin_peer)["A"]
    y = generated(clip, boss)["A"]
    listen = ~clip.speaking["A"]
    assert np.abs(x[listen] - y[listen]).mean() > 0.005
