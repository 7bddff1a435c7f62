"""Motion model: streaming equals batch, bounded look-ahead, input checks (small random models, no training)."""

import numpy as np
import pytest
import torch

from rsatalker_ros.motion.features import frame_features
from rsatalker_ros.motion.config import NEUTRAL_QUERY, MotionModelConfig
from rsatalker_ros.motion.model import CoreState, SocialMotionModel
from rsatalker_ros.motion.streaming import StreamingDyad, StreamingMotion
from rsatalker_ros.social.relation import Hierarchy, Kinship, Relation

SMALL = dict(d_model=32, n_heads=2, window=8, n_query_tokens=2)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread avoids OpenMP contention on the shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_model(seed=0, **kw) -> SocialMotionModel:
    torch.manual_seed(seed)
    m = SocialMotionModel(MotionModelConfig(**{**SMALL, **kw})).eval()
    with torch.no_grad():   # non-zero relative biases and distinct query sets, as after training
        for p in m.parameters():
            if p.dim() == 2 and p.shape[1] == 8:
                p.normal_(0, 0.5)
        m.queries.normal_(0, 1.0)
        m.feat_mean.fill_(-6.0)
        m.feat_std.fill_(3.0)
    return m


def speechlike(n_frames, seed):
    """Noise bursts switching on and off every ~0.3 s (16 kHz float32)."""
    rng = np.random.default_rng(seed)
    n = n_frames * 640
    env = np.repeat(rng.random(n // 4800 + 1) > 0.4, 4800)[:n]
    return (rng.standard_normal(n) * 0.2 * env).astype(np.float32)


def run_dyad(model, wa, wb, relation, chunks):
    dy = StreamingDyad(model, relation, "a", "b")
    fa, fb, i = [], [], 0
    for n in chunks:
        x, y = dy.push(wa[i:i + n], wb[i:i + n])
        fa += x
        fb += y
        i += n
    x, y = dy.flush()
    fa += x
    fb += y
    return fa, fb


def test_streaming_matches_batch_and_chunking():
    model = small_model()
    T = 40
    wa, wb = speechlike(T, 1), speechlike(T, 2)
    rel = Relation(Kinship.BLOOD, Hierarchy.UNEQUAL, senior="a")
    rng = np.random.default_rng(3)
    chunks = list(rng.integers(1, 1500, 60))
    fa, fb = run_dyad(model, wa, wb, rel, chunks)
    assert [i for i, _ in fa] == list(range(T)) and [i for i, _ in fb] == list(range(T))
    A, B = np.stack([m for _, m in fa]), np.stack([m for _, m in fb])
    # one big push gives the same frames
    fa2, _ = run_dyad(model, wa, wb, rel, [len(wa)])
    np.testing.assert_allclose(np.stack([m for _, m in fa2]), A, atol=1e-5)
    # batch mode with the partner motion the stream predicted gives the same frames
    feats = [frame_features(w) for w in (wa, wb)]
    with torch.no_grad():
        out = model(torch.stack(feats), torch.stack(feats[::-1]), torch.from_numpy(np.stack([B, A])),
                    torch.tensor([rel.query_index_for("a"), rel.query_index_for("b")]))
    np.testing.assert_allclose(out[0].numpy(), A, atol=1e-4)
    np.testing.assert_allclose(out[1].numpy(), B, atol=1e-4)


def test_core_chunks_equal_whole_sequence():
    model = small_model(seed=1)
    B, T = 2, 30
    torch.manual_seed(0)
    own, par = torch.randn(B, T, 320), torch.randn(B, T, 320)
    pm = torch.randn(B, T, 64)
    q = torch.tensor([0, 5])
    with torch.no_grad():
        full = model(own, par, pm, q)
        st = model.initial_audio_state(2 * B)
        both = torch.cat([own, par])
        enc = torch.cat([model.encode_audio(both[:, i:i + 3], st) for i in range(0, T, 3)]
                        + [model.flush_audio(st, 2 * B)], 1)
        d = model.cfg.motion_delay
        past = torch.cat([torch.zeros(B, d, 64), pm], 1)[:, :T]
        known = (torch.arange(T) >= d)[None].expand(B, T)
        cs, outs = CoreState(), []
        for i in range(0, T, 4):
            outs.append(model.core(enc[:B, i:i + 4], enc[B:, i:i + 4], past[:, i:i + 4], known[:, i:i + 4], q, cs))
    np.testing.assert_allclose(torch.cat(outs, 1).numpy(), full.numpy(), atol=1e-5)


def test_compiled_live_core_equals_the_torch_core():
    """The live step's compiled blocks (numba) give model.core's motion, frame by frame and two at a time, past
    the attention window (the caches trimmed), for arkit52 (clipped) and FLAME layouts; so does the numpy step."""
    from rsatalker_ros.motion.live_core import LiveCore
    for basis, D in (("arkit52", 64), ("flame100", 112)):
        model = small_model(seed=5, basis=basis, motion_dim=D)
        B, T, d = 2, 21, model.cfg.d_model
        rng = np.random.default_rng(6)
        own, par = (rng.standard_normal((B, T, d)).astype(np.float32) for _ in range(2))
        past = rng.standard_normal((B, T, D)).astype(np.float32)
        known = np.arange(T)[None].repeat(B, 0) >= 2
        q = [0, 5]
        compiled, numpy_step, state, ref, got, got_np = LiveCore(model), LiveCore(model, compiled=False), \
            CoreState(), [], [], []
        steps = [1, 2, 1, 1, 2, 2, 1, 1, 2, 1, 1, 2, 1, 3]              # new frames per step (the live 1 or 2, ...)
        for i, k in zip(np.cumsum([0] + steps[:-1]), steps):
            args = (own[:, i:i + k], par[:, i:i + k], past[:, i:i + k], known[:, i:i + k])
            with torch.no_grad():
                ref.append(model.core(*map(torch.from_numpy, args), torch.tensor(q), state).numpy())
            got.append(compiled(*args, q))
            got_np.append(numpy_step(*args, q))
            assert got[-1].dtype == np.float32 and got[-1].shape == (B, k, D)
        ref, got, got_np = (np.concatenate(x, 1) for x in (ref, got, got_np))
        assert ref.shape == (B, T, D) and ref.std() > 1e-2
        np.testing.assert_allclose(got, ref, atol=2e-5)
        np.testing.assert_allclose(got_np, ref, atol=2e-5)
        compiled.reset()                                       # a new stream: the same first frames again
        np.testing.assert_allclose(compiled(own[:, :3], par[:, :3], past[:, :3], known[:, :3], q), got[:, :3],
                                   atol=1e-6)


@pytest.mark.parametrize("lookahead", [0, 1, 2])
def test_live_speech_encoder_equals_the_torch_encoder(lookahead):
    """The stream's numpy speech encoder gives model.encode_audio's frames, chunk by chunk and at the flush."""
    from rsatalker_ros.motion.live_core import LiveSpeechEncoder
    model = small_model(seed=2, lookahead=lookahead)
    rng = np.random.default_rng(4)
    feats = (rng.standard_normal((2, 23, 320)) * 3.0 - 6.0).astype(np.float32)       # log-mel-like values
    live, st = LiveSpeechEncoder(model, 2), model.initial_audio_state(2)
    ref, got, i = [], [], 0
    for n in (1, 1, 2, 1, 5, 1, 3, 9):
        with torch.no_grad():
            ref.append(model.encode_audio(torch.from_numpy(feats[:, i:i + n]), st).numpy())
        got.append(live(feats[:, i:i + n]))
        assert got[-1].shape == ref[-1].shape and got[-1].dtype == np.float32
        i += n
    with torch.no_grad():
        ref.append(model.flush_audio(st, 2).numpy())
    got.append(live.flush())
    ref, got = np.concatenate(ref, 1), np.concatenate(got, 1)
    assert ref.shape == (2, 23, model.cfg.d_model)
    tol = dict(rtol=2e-6, atol=3e-6)          # float32 rounding: 1280-term sums, then LayerNorm (outputs ~1)
    np.testing.assert_allclose(got, ref, **tol)
    live.reset(2)                                      # a new stream starts from silence again
    np.testing.assert_allclose(live(feats[:, :4]), got[:, :4 - lookahead], **tol)


def test_lookahead_is_bounded():
    """Frame t depends on audio up to lookahead_ms after its end, and on nothing later."""
    model = small_model(seed=2)
    T, t = 30, 12
    wa = speechlike(T, 4)
    end = 640 * (t + 1) + int(model.cfg.lookahead_ms * 16)      # last sample frame t may depend on (exclusive)
    assert model.cfg.lookahead_ms <= 80.0
    changed = wa.copy()
    changed[end:] = np.random.default_rng(5).standard_normal(len(wa) - end).astype(np.float32) * 0.5
    base, _ = run_dyad(model, wa, wa * 0.5, None, [len(wa)])
    alt, _ = run_dyad(model, changed, wa * 0.5, None, [len(wa)])
    a, b = np.stack([m for _, m in base]), np.stack([m for _, m in alt])
    np.testing.assert_allclose(a[:t + 1], b[:t + 1], atol=1e-6)
    assert np.abs(a[t + 1:] - b[t + 1:]).max() > 1e-4        # later frames do see the change
    # and the sample right before the bound matters for frame t
    changed2 = wa.copy()
    changed2[end - 200:end] += 0.5
    alt2, _ = run_dyad(model, changed2, wa * 0.5, None, [len(wa)])
    assert np.abs(np.stack([m for _, m in alt2])[t] - a[t]).max() > 1e-6


@pytest.mark.parametrize("lookahead, need, flushed", [
    (1, 3800, [5]),       # 640 * 5 + 37.5 ms; 3800 samples: mel frames 0..22 complete -> feature frames 0..5
    (2, 4440, [5, 6]),    # 640 * 5 + 77.5 ms; 4440 samples: mel frames 0..26 complete -> feature frames 0..6
])
def test_frames_emitted_once_lookahead_arrived(lookahead, need, flushed):
    model = small_model(lookahead=lookahead)
    assert need == 640 * 5 + int(model.cfg.lookahead_ms * 16)     # frames 0..4 complete
    sm = StreamingMotion(model, None, "me")
    w = speechlike(20, 6)
    assert [i for i, _ in sm.push(w[:need - 1])] == [0, 1, 2, 3]
    assert [i for i, _ in sm.push(w[need - 1:need])] == [4]
    out = sm.flush()
    assert [i for i, _ in out] == flushed
    assert all(m.shape == (64,) and m.dtype == np.float32 for _, m in out)


def test_relation_and_partner_change_output_and_neutral_sharing():
    model = small_model(seed=3)
    T = 30
    wa, wb = speechlike(T, 7), speechlike(T, 8)
    r1 = Relation(Kinship.BLOOD, Hierarchy.EQUAL)
    r2 = Relation(Kinship.NON_BLOOD, Hierarchy.UNEQUAL, senior="a")
    a1 = np.stack([m for _, m in run_dyad(model, wa, wb, r1, [len(wa)])[0]])
    a2 = np.stack([m for _, m in run_dyad(model, wa, wb, r2, [len(wa)])[0]])
    assert np.abs(a1 - a2).max() > 1e-3
    shared = small_model(seed=3, share_queries=True)
    s1 = np.stack([m for _, m in run_dyad(shared, wa, wb, r1, [len(wa)])[0]])
    s2 = np.stack([m for _, m in run_dyad(shared, wa, wb, r2, [len(wa)])[0]])
    np.testing.assert_allclose(s1, s2, atol=1e-6)
    assert int(shared.query_indices(torch.tensor([0, 4]))[1]) == NEUTRAL_QUERY


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="lookahead"):
        MotionModelConfig(lookahead=3)
    with pytest.raises(ValueError, match="motion_delay"):
        MotionModelConfig(motion_delay=0)
    with pytest.raises(ValueError, match="unknown motion model config"):
        MotionModelConfig.from_dict({"d_modle": 3})
    model = small_model()
    with pytest.raises(ValueError, match="partner_motion"):
        model(torch.zeros(1, 5, 320), torch.zeros(1, 5, 320), torch.zeros(1, 5, 10), torch.tensor([0]))
    with pytest.raises(ValueError, match="query_index"):
        model(torch.zeros(1, 5, 320), torch.zeros(1, 5, 320), torch.zeros(1, 5, 64), torch.tensor([9]))
    sm = StreamingMotion(model, None, "me")
    with pytest.raises(ValueError, match="float samples"):
        sm.push(np.zeros(640, np.int16))
    with pytest.raises(ValueError, match="mono"):
        sm.push(np.zeros((640, 2), np.float32))
    with pytest.raises(ValueError, match="senior"):
        StreamingMotion(model, Relation(Kinship.BLOOD, Hierarchy.UNEQUAL, senior="x"), "me", "you")
