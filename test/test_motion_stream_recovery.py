"""No audio can poison the live motion stream (issue #11, failure 1: F32LE samples of 1e18 blanked both avatars
until restart, while diagnostics still reported 24 fps)."""

import numpy as np
import pytest
import torch

from rsatalker_ros.motion.config import MotionModelConfig
from rsatalker_ros.motion.model import SocialMotionModel
from rsatalker_ros.motion.streaming import StreamingDyad, StreamingMotion

CHUNK = 640   # 40 ms at 16 kHz


@pytest.fixture(scope="module")
def model():
    before = torch.get_num_threads()
    torch.set_num_threads(1)     # a few-frame model: threads only add contention on a busy machine
    torch.manual_seed(0)
    yield SocialMotionModel(MotionModelConfig(d_model=32, n_heads=2, window=8, n_query_tokens=2)).eval()
    torch.set_num_threads(before)


def speech(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (rng.random(t.size) > 0.3) + 0.02 * rng.standard_normal(t.size)
            ).astype(np.float32)


def run(stream, chunks):
    """[(frame index, motion)] of pushing each (own, partner) chunk in turn."""
    out = []
    for own, par in chunks:
        frames = stream.push(own, par)
        out += frames[0] if isinstance(frames, tuple) else frames
    return out


@pytest.mark.parametrize("bad", [1e18, -3e38, np.inf, np.nan])
def test_extreme_samples_do_not_blank_the_stream(model, bad):
    x = speech(2.0)
    chunks = [(x[i:i + CHUNK], x[i:i + CHUNK]) for i in range(0, x.size, CHUNK)]
    poison = np.full(CHUNK, bad, np.float32)
    chunks.insert(10, (poison, poison))
    stream = StreamingMotion(model, None, "alice", "bob")
    frames = run(stream, chunks)
    assert [k for k, _ in frames] == list(range(len(frames))), "frame numbering must continue"
    assert len(frames) >= len(chunks) - 2
    motion = np.stack([m for _, m in frames])
    assert np.isfinite(motion).all(), f"{(~np.isfinite(motion).all(1)).sum()} of {len(frames)} frames non-finite"
    # the bad chunk counts as full-scale (clamped) audio: the same frames as a stream given that instead
    ref = StreamingMotion(model, None, "alice", "bob")
    clamped = np.clip(np.nan_to_num(poison, nan=0.0), -1.0, 1.0)
    expect = run(ref, chunks[:10] + [(clamped, clamped)] + chunks[11:])
    np.testing.assert_allclose(motion, np.stack([m for _, m in expect]), atol=1e-5)


def test_a_poisoned_state_recovers_by_itself(model):
    """Whatever left non-finite numbers in the model's state, the stream resets itself and moves on."""
    x = speech(3.0, seed=1)
    dyad = StreamingDyad(model, None, "alice", "bob")
    a, _ = dyad.push(x[:16000], x[:16000])
    dyad._speech.t1 = np.full_like(dyad._speech.t1, np.nan)         # the speech encoder's context
    a2, _ = dyad.push(x[16000:], x[16000:])
    frames = a + a2
    assert [k for k, _ in frames] == list(range(len(frames)))
    motion = np.stack([m for _, m in a2])
    assert np.isfinite(motion).all()
    assert dyad.recoveries >= 1
    assert np.abs(motion[-10:]).sum() > 0, "after recovery the face moves again (not stuck on the neutral frame)"
