import numpy as np
import pytest
import torch

from rsatalker_ros.audio.features import (MelConfig, PretrainedSpeechEncoder, StreamingLogMel, log_mel,
                                          motion_frame_features)


def _signal(n=16000 * 2 + 333, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    x = 0.3 * np.sin(2 * np.pi * 220 * t) * (t > 0.5) + 0.05 * rng.standard_normal(n)
    x[:3000] = 0.0                                      # digital silence at the start
    return x.astype(np.float32)


def test_log_mel_shape_and_frame_rate():
    x = _signal()
    mel = log_mel(x)
    assert mel.shape == (x.shape[0] // 160, 80) and mel.dtype == torch.float32
    assert torch.isfinite(mel).all()
    # 4 mel frames per motion frame
    t = 50
    feats = motion_frame_features(log_mel(x[: t * 640]))
    assert feats.shape == (t, 320)
    assert torch.equal(feats[3, 80:160], log_mel(x[: t * 640])[13])


def test_log_mel_sees_a_tone_in_the_right_band():
    t = np.arange(16000) / 16000
    mel = log_mel((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    band = mel[20:80].mean(0).argmax().item()
    cfg = MelConfig()
    m = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    edges = 700 * (10 ** (np.linspace(m(cfg.f_min), m(cfg.f_max), cfg.n_mels + 2) / 2595) - 1)
    assert edges[band] < 1000 < edges[band + 2]
    # silence sits at the floor, far below the tone
    assert log_mel(np.zeros(1600, np.float32)).max() < mel.max() - 10


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_equals_batch(seed):
    x = _signal(seed=seed)
    batch = log_mel(x)
    s = StreamingLogMel()
    rng = np.random.default_rng(seed)
    outs, i = [], 0
    while i < x.shape[0]:
        n = int(rng.integers(1, 1200))
        outs.append(s.push(x[i:i + n]))
        i += n
    outs.append(s.flush())
    stream = torch.cat(outs)
    assert stream.shape == batch.shape
    assert (stream - batch).abs().max().item() < 1e-4


def test_streaming_latency_is_as_documented():
    cfg = MelConfig()
    x = _signal()
    s = StreamingLogMel(cfg)
    # frame i is out once sample 160 i + 279 is in (lookahead 120 samples after its hop)
    assert cfg.lookahead == 120
    assert s.push(x[:279]).shape[0] == 0
    assert s.push(x[279:280]).shape[0] == 1
    got = s.push(x[280:160 * 10 + 280])
    assert got.shape[0] == 10 and s.frames_emitted == 11
    assert (got - log_mel(x)[1:11]).abs().max() < 1e-4


def test_bad_input_raises():
    with pytest.raises(ValueError, match="mono"):
        log_mel(np.zeros((2, 1600), np.float32))
    with pytest.raises(ValueError, match="int16"):
        log_mel(np.zeros(1600, np.int16))
    with pytest.raises(ValueError, match="multiple of 4"):
        motion_frame_features(torch.zeros(10, 80))


def test_pretrained_encoder_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        PretrainedSpeechEncoder(tmp_path / "no_such_wav2vec2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="config.json"):
        PretrainedSpeechEncoder(tmp_path / "empty")
