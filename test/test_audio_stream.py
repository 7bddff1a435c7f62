import numpy as np
import pytest

from rsatalker_ros.audio.ring_buffer import AudioRingBuffer, StreamingResampler, resample, to_float_mono
from rsatalker_ros.audio.voice_activity import CHUNK, VadConfig, VoiceActivityDetector


@pytest.mark.parametrize("rate", [48000, 44100, 22050, 8000])
def test_streaming_resampler_chunked_equals_whole_and_keeps_a_tone(rate):
    t = np.arange(rate) / rate
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    r = StreamingResampler(rate)
    rng = np.random.default_rng(0)
    outs, i = [], 0
    while i < x.shape[0]:
        n = int(rng.integers(1, 3000))
        outs.append(r.push(x[i:i + n]))
        i += n
    outs.append(r.flush())
    y = np.concatenate(outs)
    r2 = StreamingResampler(rate)
    whole = np.concatenate([r2.push(x), r2.flush()])
    assert y.shape == (16000,) and y.dtype == np.float32
    assert np.abs(y - whole).max() < 1e-5
    ref = 0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.abs(y - ref)[200:-200].max() < 1e-3
    offline = resample(x, rate)                                   # scipy polyphase, whole signal
    assert offline.shape == (16000,) and np.abs(offline - y)[200:-200].max() < 2e-3


def test_resampler_removes_content_above_the_new_nyquist():
    t = np.arange(48000) / 48000
    x = (0.5 * np.sin(2 * np.pi * 12000 * t)).astype(np.float32)   # above 8 kHz: must not alias into the output
    r = StreamingResampler(48000)
    y = np.concatenate([r.push(x), r.flush()])
    assert np.abs(y[200:-200]).max() < 0.02


def test_to_float_mono():
    a = np.array([[32767, -32768], [0, 0]], np.int16)
    assert np.allclose(to_float_mono(a, 2), [-0.5 / 32768, 0.0], atol=1e-4)
    assert np.allclose(to_float_mono(np.array([16384, 16384], np.int16).ravel(), 2), [0.5])
    with pytest.raises(ValueError, match="multiple"):
        to_float_mono(np.zeros(3, np.int16), 2)


def test_ring_buffer_wraps_and_reports_what_it_holds():
    rb = AudioRingBuffer(1000)
    data = np.arange(6000, dtype=np.float32)
    i = 0
    for n in (3, 500, 999, 1500, 7, 1991):
        rb.write(data[i:i + n])
        i += n
        assert np.array_equal(rb.latest(1000), data[max(0, i - 1000):i])
    assert rb.total_written == i and rb.oldest_index == i - 1000
    got, start = rb.read_since(0)
    assert start == i - 1000 and np.array_equal(got, data[start:i])
    with pytest.raises(ValueError, match="not held"):
        rb.read(0, 10)


def _speech():
    from rsatalker_ros.data.espeak import Voice, synthesize
    return synthesize("Hello, this is a test of the voice activity detector.", Voice("en-us", "m3")).wave


@pytest.mark.parametrize("backend", ["silero", "energy"])
def test_vad_speech_vs_silence(backend):
    import torch
    threads = torch.get_num_threads()
    vad = VoiceActivityDetector(VadConfig(backend=backend))
    assert vad.backend_name == backend
    assert torch.get_num_threads() == threads            # loading the VAD must not change torch's threads
    speech = _speech()
    silence = np.random.default_rng(0).normal(0, 1e-4, 16000 * 2).astype(np.float32)
    p_sil = vad.probabilities(silence)
    p_speech = vad.probabilities(np.concatenate([silence[:8000], speech]))
    assert p_sil.shape == (silence.shape[0] // CHUNK,)
    assert (p_sil < 0.5).all()
    speech_part = p_speech[8000 // CHUNK + 3:]
    assert (speech_part >= 0.5).mean() > 0.6
    # streaming in odd chunk sizes gives the same probabilities as whole-signal processing
    vad.reset()
    x = np.concatenate([silence[:8000], speech])
    streamed = np.concatenate([vad.push(x[i:i + 700]) for i in range(0, x.shape[0], 700)])
    assert np.allclose(streamed, p_speech[: streamed.shape[0]], atol=1e-5)


def test_vad_rejects_wrong_chunk():
    vad = VoiceActivityDetector(VadConfig(backend="energy"))
    with pytest.raises(ValueError, match="512"):
        vad.process_chunk(np.zeros(100, np.float32))
    with pytest.raises(ValueError, match="backend"):
        VoiceActivityDetector(VadConfig(backend="magic"))


def test_silero_stream_equals_a_plain_model_run():
    """The silero backend runs the model on buffers it binds once (its recurrent state swaps between two of them):
    every chunk's probability must be exactly that of a plain onnxruntime run carrying the state along."""
    import onnxruntime
    from rsatalker_ros.audio.voice_activity import silero_model_path
    x = np.concatenate([np.random.default_rng(1).normal(0, 1e-3, 8000).astype(np.float32), _speech()])
    vad = VoiceActivityDetector(VadConfig(backend="silero"))
    vad.push(x[:3000])
    vad.reset()                                          # a reset mid-stream starts from a fresh state again
    streamed = np.concatenate([vad.push(x[i:i + 320]) for i in range(0, x.shape[0], 320)])
    session = onnxruntime.InferenceSession(str(silero_model_path()), providers=["CPUExecutionProvider"])
    state, context, expected = np.zeros((2, 1, 128), np.float32), np.zeros(64, np.float32), []
    for i in range(0, x.shape[0] - CHUNK + 1, CHUNK):
        window = np.concatenate([context, x[i:i + CHUNK]])[None]
        prob, state = session.run(None, {"input": window, "state": state, "sr": np.array(16000, np.int64)})
        context = x[i + CHUNK - 64:i + CHUNK]
        expected.append(float(prob[0, 0]))
    assert streamed.shape[0] == len(expected) and (streamed >= 0.5).any() and (streamed < 0.5).any()
    np.testing.assert_array_equal(streamed, np.array(expected, np.float32))
