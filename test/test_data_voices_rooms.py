"""Issue #12 data: other synthesizers with exact phone timings, room acoustics, noisy conversations, robustness."""

import shutil

import numpy as np
import pytest

from rsatalker_ros.data.acoustics import (AcousticConfig, NOISE_KINDS, RoomCondition, apply_condition,
                                          draw_condition, make_noise, microphone, mix_at_snr, room_impulse_response,
                                          shortest_rt60)
from rsatalker_ros.data.espeak import Voice
from rsatalker_ros.motion.layout import AUDIO_RATE

needs = {e: pytest.mark.skipif(shutil.which(e) is None, reason=f"{e} not installed (apt install {e})")
         for e in ("festival", "flite")}


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


@pytest.mark.parametrize("voice", [pytest.param(Voice("kal_diphone", engine="festival"), marks=needs["festival"]),
                                   pytest.param(Voice("awb", engine="flite", rate=190), marks=needs["flite"])])
def test_other_engines_give_phone_timings_that_fit_the_audio(voice):
    from rsatalker_ros.data.synthesizers import synthesize
    u = synthesize("Bob met Pam. Maybe.", voice)
    syms = [p.symbol for p in u.phonemes]
    assert {"b", "m", "p"} <= set(syms) and "E" in syms            # CMU phones mapped to espeak mnemonics
    assert all(a.end == b.start for a, b in zip(u.phonemes, u.phonemes[1:]))
    assert abs(u.phonemes[-1].end - len(u.wave)) < 0.1 * AUDIO_RATE
    speech = np.concatenate([u.wave[p.start:p.end] for p in u.phonemes if not p.is_pause])
    pauses = np.concatenate([u.wave[p.start:p.end] for p in u.phonemes if p.is_pause])
    assert _rms(speech) > 4 * _rms(pauses)                          # the timings line up with the sound
    slow = synthesize("Bob met Pam. Maybe.", Voice(voice.language, engine=voice.engine, rate=120))
    assert len(slow.wave) > 1.2 * len(u.wave)                       # rate stretches the durations
    with pytest.raises(ValueError, match="engine"):
        synthesize("hi", Voice("x", engine="nope"))


def test_noise_kinds_are_unit_rms_seeded_and_distinct():
    n = AUDIO_RATE * 2
    babble = [np.sin(np.arange(4000) * 0.2).astype(np.float32)]
    spectra = {}
    for kind in NOISE_KINDS:
        a = make_noise(kind, np.random.default_rng(5), n, babble)
        b = make_noise(kind, np.random.default_rng(5), n, babble)
        assert a.shape == (n,) and abs(_rms(a) - 1) < 1e-3 and np.array_equal(a, b)
        p = np.abs(np.fft.rfft(a)) ** 2
        f = np.fft.rfftfreq(n, 1 / AUDIO_RATE)
        spectra[kind] = p[f < 500].sum() / p.sum()                  # share of power below 500 Hz
    assert spectra["fan"] > 0.4 and spectra["white"] < 0.1 and spectra["keyboard"] < 0.1
    k = make_noise("keyboard", np.random.default_rng(1), n)
    assert np.mean(k ** 4) / np.mean(k ** 2) ** 2 > 6                # clicks: impulsive, unlike white noise
    with pytest.raises(ValueError, match="noise kind"):
        make_noise("rain", np.random.default_rng(0), n)


def test_snr_reverberation_and_microphone_do_what_they_say():
    rng = np.random.default_rng(0)
    speech = np.zeros(AUDIO_RATE * 2, np.float32)
    speech[4000:20000] = 0.2 * rng.standard_normal(16000)
    active = speech != 0
    noise = make_noise("white", rng, speech.shape[0])
    mixed = mix_at_snr(speech, noise, 10.0, active)
    added = mixed - speech
    assert 20 * np.log10(_rms(speech[active]) / _rms(added)) == pytest.approx(10.0, abs=0.01)
    h = room_impulse_response(rng, 0.6, (6.0, 5.0, 3.0), 1.5)
    e = np.cumsum(h[::-1] ** 2)[::-1]                               # Schroeder energy decay
    db = 10 * np.log10(e / e[0])
    t20 = (np.argmax(db < -25) - np.argmax(db < -5)) / AUDIO_RATE * 3   # RT60 from the -5..-25 dB slope
    assert 0.3 < t20 < 1.0, t20
    phone = microphone(rng.standard_normal(AUDIO_RATE).astype(np.float32), 8000, 100.0, 1000.0, 0.0)
    p = np.abs(np.fft.rfft(phone)) ** 2
    f = np.fft.rfftfreq(AUDIO_RATE, 1 / AUDIO_RATE)
    assert p[f > 4500].sum() < 1e-3 * p.sum() and p[f < 150].sum() < 1e-3 * p.sum()


def test_every_drawn_room_can_have_its_drawn_reverberation_time():
    # a 10 x 8 x 4 m room cannot reach RT60 0.15 s (pyroomacoustics refused it and stopped make_dataset)
    assert shortest_rt60((10.0, 8.0, 4.0)) > 0.15 > shortest_rt60((3.0, 3.0, 2.5))
    import pyroomacoustics as pra
    rng, cfg = np.random.default_rng(0), AcousticConfig(reverb_prob=1.0)
    rooms = [draw_condition(rng, cfg) for _ in range(400)]
    for c in rooms:
        assert cfg.rt60_s[0] <= c.rt60_s <= cfg.rt60_s[1]
        pra.inverse_sabine(c.rt60_s, np.asarray(c.room_m))            # raises ValueError for an impossible room
    assert min(c.rt60_s for c in rooms) < 0.2                         # small rooms still get dry ones


def test_a_track_without_speech_still_gets_the_rooms_noise():
    silent = np.zeros(AUDIO_RATE, np.float32)
    c = RoomCondition(noise="fan", snr_db=10.0, level_dbfs=-20.0, seed=3)
    x = apply_condition(silent, np.zeros_like(silent, bool), c)
    assert 20 * np.log10(_rms(x)) == pytest.approx(-30.0, abs=1.5)
    assert np.array_equal(x, apply_condition(silent, np.zeros_like(silent, bool), c))   # seeded


@needs["festival"]
def test_noisy_conversation_records_its_conditions_and_keeps_clean_targets():
    from rsatalker_ros.data.synthetic import generate_clip
    cfg = AcousticConfig(clean_prob=0.0, noise_only_prob=1.0, reverb_prob=1.0)
    clip = generate_clip("train", 1, 4, 4.0, ("espeak-ng", "festival"), cfg)
    clean = generate_clip("train", 1, 4, 4.0, ("espeak-ng", "festival"), cfg.__class__(clean_prob=1.0,
                                                                                        noise_only_prob=1.0))
    ac = clip.meta["acoustics"]
    silent = ac["silent_participant"]
    talker = clip.partner_of(silent)
    assert set(ac["tracks"]) == {"A", "B"} and all(t["noise"] in NOISE_KINDS for t in ac["tracks"].values())
    assert not clip.speaking[silent].any() and clip.speaking[talker].any()
    assert _rms(clip.audio[silent]) > 1e-3                          # a whole track of room noise
    assert clip.meta["phones"][talker] and not [p for p in clip.meta["phones"][silent] if not p[0].startswith("_")]
    assert {v["engine"] for v in clip.meta["voices"].values()} <= {"espeak-ng", "festival"}
    np.testing.assert_allclose(clip.motion[talker], clean.motion[talker], atol=0.01)  # clean targets (espeak-ng carries a little state)


def test_bilabial_closure_counts_phones_below_a_quarter_of_the_open_vowels():
    from rsatalker_ros.eval.robustness import closure_counts
    opening = np.array([0, 8, 10, 8, 1, 9, 10, 5, 4, 0], np.float32)  # mm per 40 ms frame
    f = 640
    phones = [("A:", 1 * f, 3 * f), ("b", 4 * f, 5 * f), ("a", 5 * f, 7 * f), ("m", 7 * f, 9 * f)]
    assert closure_counts(opening, phones) == (1, 2)                 # /b/ at 1 mm closes; /m/ at 4 mm does not
    from rsatalker_ros.eval.robustness import initial_bilabial_openings
    start = [("_", 0, 4 * f), ("b", 4 * f, 5 * f), ("a", 5 * f, 7 * f), ("m", 7 * f, 9 * f)]
    assert initial_bilabial_openings(opening, start) == [1.0]        # only the /b/ after the pause starts an utterance


@needs["flite"]
def test_robustness_evaluation_of_the_shipped_model_on_a_tiny_held_out_set(tmp_path):
    from rsatalker_ros.eval.evaluate import load_models
    from rsatalker_ros.eval.robustness import (RobustnessConfig, evaluate_robustness, make_heldout, markdown_tables,
                                               plot_robustness, targets_table)
    cfg = RobustnessConfig(n_clips=1, n_probe=4, seconds=6.0, noise_kinds=("white",), snrs_db=(10.0,),
                           noise_only_dbfs=(-30.0,))
    make_heldout(tmp_path / "held", cfg, progress=False)
    models = load_models([str(__import__("pathlib").Path(__file__).resolve().parent.parent / "rsatalker_ros" / "assets"
                              / "checkpoints" / "motion_default.safetensors")])
    res = evaluate_robustness(models, tmp_path / "held", cfg, progress=False)
    rows = next(iter(res.rows.values()))
    assert list(rows) == ["clean", "white 10 dB", "noise-only white -30 dBFS", "flite clean"]
    assert res.ground_truth["clean"]["closure"] == 1.0 and res.ground_truth["clean"]["bilabials"] > 0
    assert rows["clean"]["corr"] > 0.5                               # the mouth follows clean speech
    assert 0 < rows["noise-only white -30 dBFS"]["noise_share"] < 5 and rows["clean"]["LVE"] > 0
    assert "noise-only −30 dBFS" in targets_table(res) and "flite clean" in markdown_tables(res)
    assert plot_robustness(res, tmp_path / "r.png").stat().st_size > 20000
