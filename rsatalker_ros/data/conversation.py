"""One synthetic two-person conversation: turn-taking audio from espeak-ng and both participants' face motion.

Audio: each participant speaks whole sentences with their own espeak-ng voice (language variant, voice variant,
rate, pitch, range drawn per clip). Turns alternate; the gap before a turn comes from the incoming speaker's
priors (negative = overlap, the previous speaker is interrupted while still talking); a speaker sometimes keeps
the floor after a pause. Listeners may say a short backchannel ("mm-hmm", "yeah") in the partner's pauses.

Motion per participant, 25 fps, ARKIT_LAYOUT (52 ARKit weights | jaw 3 | neck 3 | eyes 6):
  - mouth and jaw from the exact phoneme timings (``visemes``), jaw joint x-rotation = JAW_RAD_PER_OPEN * jawOpen;
  - head (neck rotation): smooth free motion scaled by role, accent nods while speaking, backchannel nods at the
    partner's pauses and spontaneous nods while listening (``listener_priors``);
  - gaze: alternating at-partner / averted fixations whose proportions depend on role and relation; eye joint
    rotations and the ARKit eyeLook* weights agree; the head follows gaze a little;
  - blinks, smiles (Duchenne share from the priors), brow raises on accented words.
Angles: neck/eye x-rotation > 0 tilts the face/eyes down, y-rotation > 0 turns them toward +x (the subject's left,
FLAME convention), so gaze yaw > 0 is eyeLookOutLeft + eyeLookInRight.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from rsatalker_ros.data.acoustics import AcousticConfig, apply_condition, draw_condition
from rsatalker_ros.data.dataset import Clip
from rsatalker_ros.data.espeak import Espeak, Utterance, Voice
from rsatalker_ros.data.synthesizers import ENGINES, FESTIVAL_VOICES, FLITE_VOICES, synthesize
from rsatalker_ros.data.listener_priors import SocialPriors, priors_for
from rsatalker_ros.data.visemes import ArticulationConfig, mouth_blendshapes
from rsatalker_ros.face.arkit import ARKIT52_INDEX as IX
from rsatalker_ros.motion.layout import ARKIT_LAYOUT, AUDIO_RATE, MOTION_FPS, SAMPLES_PER_FRAME
from rsatalker_ros.social.relation import Hierarchy, Relation

JAW_RAD_PER_OPEN = 0.2      # jaw x-rotation (rad) for jawOpen = 1
GAZE_RAD_FULL = 0.5         # gaze angle (rad) that maps to an eyeLook* weight of 1

SENTENCES = (
    "Did you manage to finish the report last night?", "I was thinking we could go to the coast this weekend.",
    "The train was late again this morning.", "Honestly, I don't mind either way.",
    "Could you remind me what time the meeting starts?", "We should probably call the plumber about the sink.",
    "That sounds like a really good idea.", "I haven't seen that film yet, is it any good?",
    "Let me check my calendar first.", "My sister is coming to visit next month.",
    "The new project starts on Monday.", "Have you tried the bakery on the corner?",
    "I think it is going to rain later.", "We need to decide before the end of the week.",
    "That was the best dinner I've had in ages.", "Can you send me the numbers when you have them?",
    "I'm not sure that plan will work.", "Maybe we can talk about it over lunch.",
    "The garden looks lovely this time of year.", "I'll pick up some groceries on the way home.",
    "Remember to bring your jacket, it gets cold in the evening.", "Well, that depends on the budget.",
    "I read an interesting article about sleep yesterday.", "How did the interview go?",
    "We could ask the others what they think.", "The printer on the second floor is broken again.",
    "I'd love to hear more about your trip.", "You should have seen the look on his face.",
    "Let's keep it simple for now.", "There is a small problem with the schedule.",
    "Thank you, that really helps a lot.", "I will have to think about it.",
    "Why don't we start with the easy part?", "The kids were so excited about the museum.",
    "I can't believe it is already December.", "Would you like another cup of tea?",
    "We finished the first draft on Friday.", "Please make sure the door is locked.",
    "I met an old friend at the station.", "The results look much better than last time.",
    "It took me almost an hour to get here.", "Do you remember where we parked the car?",
    "I think the second option is cheaper.", "Your grandmother called while you were out.",
    "Shall we go for a walk after dinner?", "The presentation went quite well, I think.",
    "We might need more time for testing.", "Could you pass me the salt, please?",
    "I wonder whether the shop is still open.", "That is exactly what I was worried about.",
    "He promised to fix it by tomorrow.", "Let's meet at the usual place at six.",
    "I have a few questions about the contract.", "The weather was perfect for the picnic.",
    "You did a great job on the slides.", "Nobody told me the deadline had moved.",
    "My phone battery died in the middle of the call.", "We should celebrate when this is over.",
    "Can we go through the plan one more time?", "I found the keys under the sofa.",
)
BACKCHANNELS = ("mm-hmm", "yeah", "right", "okay", "I see", "sure", "uh-huh", "yes", "oh really", "true")
LANGUAGES = ("en-us", "en-us", "en", "en-gb-x-rp", "en-029", "en-gb-scotland")
VARIANTS = ("f1", "f2", "f3", "f4", "f5", "m1", "m2", "m3", "m4", "m5", "m6", "m7")


@dataclass
class ConversationConfig:
    seconds: float = 12.0
    participants: tuple[str, str] = ("A", "B")
    noise_floor: float = 1e-4          # std of white noise added to each track (silence is never digital zero)
    max_overlap_s: float = 0.6
    continue_prob: float = 0.12        # the same speaker goes on after a pause
    sentence_pause: tuple[float, float] = (0.25, 0.7)   # silence between sentences of one turn (s)
    senior_starts_prob: float = 0.65
    engines: tuple[str, ...] = ("espeak-ng",)          # speech synthesizers to draw each participant's voice from
    acoustics: AcousticConfig | None = None           # room noise / reverberation / microphone (None = clean)

    def __post_init__(self):
        bad = [e for e in self.engines if e not in ENGINES]
        if bad or not self.engines:
            raise ValueError(f"unknown speech engines {bad}; expected a non-empty subset of {ENGINES}")


def random_voice(rng: np.random.Generator, engines: tuple[str, ...] = ("espeak-ng",)) -> Voice:
    """A voice of one of ``engines`` (the engine is drawn only when there is more than one)."""
    engine = engines[0] if len(engines) == 1 else str(rng.choice(engines))
    if engine == "espeak-ng":
        return Voice(language=str(rng.choice(LANGUAGES)), variant=str(rng.choice(VARIANTS)),
                     rate=int(rng.integers(140, 191)), pitch=int(rng.integers(30, 71)),
                     pitch_range=int(rng.integers(30, 81)), volume=100)
    names = FESTIVAL_VOICES if engine == "festival" else FLITE_VOICES
    return Voice(language=str(rng.choice(names)), rate=int(rng.integers(140, 191)), engine=engine)


def _smooth_noise(rng, n: int, sigma_frames: float, dims: int) -> np.ndarray:
    """Gaussian-filtered white noise with unit std per dim: [n, dims]."""
    from scipy.ndimage import gaussian_filter1d
    pad = int(4 * sigma_frames)
    x = gaussian_filter1d(rng.standard_normal((n + 2 * pad, dims)), sigma_frames, axis=0)[pad:pad + n]
    return x / (x.std(axis=0, keepdims=True) + 1e-9)


def _poisson_times(rng, rate_per_min: np.ndarray, fps: int) -> np.ndarray:
    """Event frames of an inhomogeneous Poisson process with per-frame rate (events/min): [k] int."""
    p = np.clip(rate_per_min / 60.0 / fps, 0.0, 1.0)
    return np.flatnonzero(rng.random(p.shape[0]) < p)


class _Track:
    """Audio and phoneme segments of one participant while the conversation is laid out."""

    def __init__(self, n_samples: int):
        self.audio = np.zeros(n_samples, np.float32)
        self.segments: list[tuple[str, int, int]] = []
        self.word_starts: list[int] = []
        self.busy: list[tuple[int, int]] = []   # [start, end) sample ranges with speech

    def place(self, utt: Utterance, start: int, gain: float) -> tuple[int, int]:
        n = self.audio.shape[0]
        w = utt.wave * gain
        a, b = max(0, start), min(n, start + w.shape[0])
        if b > a:
            self.audio[a:b] += w[a - start:b - start]
        speech = [p for p in utt.phonemes if not p.is_pause]
        for p in utt.phonemes:
            s, e = start + p.start, start + p.end
            if s < n:
                self.segments.append((p.symbol, s, min(e, n)))
        self.word_starts += [start + s for s in utt.word_starts if start + s < n]
        if not speech:
            return start, start
        s0, s1 = start + speech[0].start, start + speech[-1].end
        self.busy.append((s0, s1))
        return s0, s1

    def is_free(self, a: int, b: int) -> bool:
        return all(e <= a or s >= b for s, e in self.busy)


def _active_samples(segments, n: int) -> np.ndarray:
    """bool [n]: samples inside non-pause phonemes."""
    act = np.zeros(n, bool)
    for sym, s, e in segments:
        if not sym.startswith("_"):
            act[max(0, s):min(n, e)] = True
    return act


def _babble_speech(rng: np.random.Generator, n_utterances: int = 6) -> list[np.ndarray]:
    """Utterances of random espeak-ng voices for babble noise (other people talking in the room)."""
    return [synthesize(SENTENCES[int(rng.integers(len(SENTENCES)))], random_voice(rng)).wave
            for _ in range(n_utterances)]


def _speaking_mask(segments, n_frames: int, close_frames: int = 5) -> np.ndarray:
    """Frames covered by non-pause phonemes, with gaps shorter than close_frames filled: [T] bool."""
    cov = np.zeros(n_frames, bool)
    for sym, s, e in segments:
        if sym.startswith("_") or e <= s:
            continue
        cov[s // SAMPLES_PER_FRAME: min(n_frames, -(-e // SAMPLES_PER_FRAME))] = True
    idx = np.flatnonzero(cov)
    if idx.size:
        gaps = np.flatnonzero(np.diff(idx) > 1)
        for g in gaps:
            a, b = idx[g] + 1, idx[g + 1]
            if b - a < close_frames:
                cov[a:b] = True
    return cov


def _pauses(segments, min_len: int) -> list[tuple[int, int]]:
    """[start, end) sample ranges between consecutive speech phonemes that last at least min_len samples."""
    speech = sorted((s, e) for sym, s, e in segments if not sym.startswith("_"))
    out = []
    for (s0, e0), (s1, e1) in zip(speech, speech[1:]):
        if s1 - e0 >= min_len:
            out.append((e0, s1))
    return out


def _nod(pitch: np.ndarray, f0: int, amplitude: float, cycles: int, period_s: float, fps: int) -> None:
    n = int(round(cycles * period_s * fps))
    t = np.arange(n) / fps
    shape = np.sin(np.pi * t / period_s) ** 2 * (0.75 ** np.floor(t / period_s))
    a, b = max(0, f0), min(pitch.shape[0], f0 + n)
    if b > a:
        pitch[a:b] += amplitude * shape[a - f0:b - f0]


def _envelope_event(track: np.ndarray, f0: int, attack: int, hold: int, release: int, amp: float) -> None:
    shape = np.concatenate([np.linspace(0, 1, attack + 1)[1:], np.ones(hold), np.linspace(1, 0, release + 1)[1:]])
    a, b = max(0, f0), min(track.shape[0], f0 + shape.shape[0])
    if b > a:
        track[a:b] = np.maximum(track[a:b], amp * shape[a - f0:b - f0])


def _behaviour(rng, pri: SocialPriors, mouth: np.ndarray, speaking: np.ndarray, nod_frames: list[int],
               accent_frames: list[int], fps: int) -> np.ndarray:
    """Full motion [T, 64] of one participant from mouth weights, the speaking mask and event frames."""
    from scipy.ndimage import gaussian_filter1d
    n = speaking.shape[0]
    lay = ARKIT_LAYOUT
    m = np.zeros((n, lay.dim), np.float32)
    expr = mouth.copy()
    listen = gaussian_filter1d((~speaking).astype(np.float64), 3.0)          # 0..1, smoothed role

    # --- head: free motion + nods
    head_std = listen * pri.head_std + (1 - listen) * pri.speak_head_std
    neck = _smooth_noise(rng, n, sigma_frames=12.0, dims=3) * np.array([0.8, 1.0, 0.5]) * head_std[:, None]
    pitch = np.zeros(n)
    for f0 in nod_frames:  # backchannel + spontaneous nods (listening)
        cycles = max(1, int(round(rng.normal(pri.nod_cycles, 0.5))))
        _nod(pitch, f0, pri.nod_amplitude * rng.uniform(0.8, 1.2), cycles, rng.uniform(0.45, 0.65), fps)
    brow = np.zeros(n)
    for f0 in accent_frames:  # speaking: accent nods and brow raises
        if rng.random() < 0.35:
            _nod(pitch, f0, pri.speak_head_std * rng.uniform(0.5, 1.0), 1, rng.uniform(0.3, 0.5), fps)
        if rng.random() < pri.brow_raise_prob:
            _envelope_event(brow, f0, 3, int(rng.integers(3, 12)), 5, rng.uniform(0.2, 0.5))

    # --- gaze: alternating fixations
    gaze = np.zeros((n, 2))                                                  # pitch, yaw
    f, shifts = 0, []
    while f < n:
        at_frac = pri.listen_gaze_at_partner if listen[f] > 0.5 else pri.speak_gaze_at_partner
        at_frac = float(np.clip(at_frac, 0.05, 0.95))
        looking_at = rng.random() < at_frac
        away_mean = 0.9
        mean_s = away_mean * at_frac / (1 - at_frac) if looking_at else away_mean
        dur = max(3, int(fps * (0.25 + rng.exponential(mean_s))))
        if looking_at:
            target = rng.normal(0.0, 0.02, 2)
        else:
            target = np.array([rng.uniform(-0.15, 0.25), rng.choice([-1, 1]) * rng.uniform(0.15, 0.4)])
        gaze[f:f + dur] = target
        shifts.append(f)
        f += dur
    gaze = gaussian_filter1d(gaze, 0.8, axis=0)
    follow = gaussian_filter1d(gaze, 5.0, axis=0)                           # the head follows gaze slowly
    neck[:, 0] += pitch + 0.3 * follow[:, 0]
    neck[:, 1] += 0.35 * follow[:, 1]

    # --- blinks: Poisson + some at gaze shifts
    blink_rate = np.where(speaking, pri.blink_rate * 1.1, pri.blink_rate)
    blink_frames = list(_poisson_times(rng, blink_rate * 0.8, fps))
    blink_frames += [s for s in shifts[1:] if rng.random() < 0.15]
    blink = np.zeros(n)
    for f0 in blink_frames:
        shape = np.array([0.6, 1.0, 0.85, 0.45, 0.15]) if rng.random() < 0.5 else np.array([0.7, 1.0, 0.5, 0.15])
        a, b = f0, min(n, f0 + shape.shape[0])
        blink[a:b] = np.maximum(blink[a:b], shape[:b - a])

    # --- smiles
    smile_rate = listen * pri.listen_smile_rate + (1 - listen) * pri.speak_smile_rate
    smile = np.zeros(n)
    for f0 in _poisson_times(rng, smile_rate, fps):
        _envelope_event(smile, int(f0), int(fps * rng.uniform(0.2, 0.5)), int(fps * rng.uniform(0.5, 2.5)),
                        int(fps * rng.uniform(0.4, 0.9)), pri.smile_amplitude * rng.uniform(0.7, 1.2))
    smile = smile + pri.baseline_smile
    asym = rng.uniform(-0.08, 0.08)

    # --- write the vector
    expr[:, IX["mouthSmileLeft"]] += smile * (1 + asym)
    expr[:, IX["mouthSmileRight"]] += smile * (1 - asym)
    expr[:, IX["cheekSquintLeft"]] += 0.6 * pri.duchenne * smile
    expr[:, IX["cheekSquintRight"]] += 0.6 * pri.duchenne * smile
    expr[:, IX["eyeSquintLeft"]] += 0.4 * pri.duchenne * smile
    expr[:, IX["eyeSquintRight"]] += 0.4 * pri.duchenne * smile
    expr[:, IX["mouthDimpleLeft"]] += 0.3 * (1 - pri.duchenne) * smile
    expr[:, IX["mouthDimpleRight"]] += 0.3 * (1 - pri.duchenne) * smile
    expr[:, IX["browInnerUp"]] += brow
    expr[:, IX["browOuterUpLeft"]] += 0.8 * brow
    expr[:, IX["browOuterUpRight"]] += 0.8 * brow
    expr[:, IX["eyeBlinkLeft"]] += blink
    expr[:, IX["eyeBlinkRight"]] += blink
    gp, gy = gaze[:, 0] / GAZE_RAD_FULL, gaze[:, 1] / GAZE_RAD_FULL
    for side in ("Left", "Right"):
        expr[:, IX["eyeLookDown" + side]] += np.clip(gp, 0, 1)
        expr[:, IX["eyeLookUp" + side]] += np.clip(-gp, 0, 1)
    expr[:, IX["eyeLookOutLeft"]] += np.clip(gy, 0, 1)
    expr[:, IX["eyeLookInRight"]] += np.clip(gy, 0, 1)
    expr[:, IX["eyeLookInLeft"]] += np.clip(-gy, 0, 1)
    expr[:, IX["eyeLookOutRight"]] += np.clip(-gy, 0, 1)
    m[:, lay.expression] = np.clip(expr, 0.0, 1.0)
    m[:, lay.jaw.start] = JAW_RAD_PER_OPEN * m[:, IX["jawOpen"]]
    m[:, lay.neck] = neck
    eyes = np.stack([gaze[:, 0], gaze[:, 1], np.zeros(n)], axis=1)
    m[:, lay.eyes] = np.concatenate([eyes, eyes], axis=1)
    return m.astype(np.float32)


def generate_conversation(relation: Relation, rng: np.random.Generator, clip_id: str,
                          cfg: ConversationConfig = ConversationConfig()) -> Clip:
    """One synthetic clip of ``cfg.seconds`` (rounded to whole frames) under ``relation``."""
    pids = cfg.participants
    if relation.hierarchy == Hierarchy.UNEQUAL and relation.senior not in pids:
        raise ValueError(f"relation senior {relation.senior!r} is not one of the participants {pids!r}")
    if cfg.seconds < 2.0:
        raise ValueError(f"clips must last at least 2 s, got {cfg.seconds}")
    fps = MOTION_FPS
    n_frames = int(round(cfg.seconds * fps))
    n = n_frames * SAMPLES_PER_FRAME
    Espeak.get().seed(int(rng.integers(2 ** 31)))
    voices = {p: random_voice(rng, cfg.engines) for p in pids}
    ac = cfg.acoustics
    # the room draws come from their own generator, so the same clip in other rooms keeps the same conversation
    room_rng = np.random.default_rng(int(rng.integers(2 ** 63)))
    silent = str(room_rng.choice(pids)) if ac is not None and room_rng.random() < ac.noise_only_prob else ""
    gains = {p: float(rng.uniform(0.6, 0.95)) for p in pids}
    pri = {p: priors_for(relation, p) for p in pids}
    tracks = {p: _Track(n) for p in pids}
    turns = []

    if relation.hierarchy == Hierarchy.UNEQUAL:
        junior = pids[1] if relation.senior == pids[0] else pids[0]
        spk = relation.senior if rng.random() < cfg.senior_starts_prob else junior
    else:
        spk = pids[int(rng.integers(2))]
    if silent == spk:
        spk = pids[1] if spk == pids[0] else pids[0]
    cursor = int(rng.uniform(*(ac.lead_in_s if ac is not None else (0.1, 0.6))) * AUDIO_RATE)
    order = rng.permutation(len(SENTENCES))
    k_sent = 0
    while cursor < n:
        n_sent = int(min(3, 1 + rng.poisson(max(0.0, pri[spk].turn_sentences - 1.0))))
        t0, t_end = None, cursor
        pos = cursor
        for _ in range(n_sent):
            if pos >= n:
                break
            text = SENTENCES[order[k_sent % len(order)]]
            k_sent += 1
            s0, s1 = tracks[spk].place(synthesize(text, voices[spk]), pos, gains[spk])
            t0 = s0 if t0 is None else t0
            t_end = s1
            pos = s1 + int(rng.uniform(*cfg.sentence_pause) * AUDIO_RATE)
        turns.append({"speaker": spk, "start": int(t0 if t0 is not None else cursor), "end": int(t_end),
                      "kind": "turn"})
        if rng.random() < cfg.continue_prob or silent:
            gap = rng.uniform(0.5, 1.2)
        else:
            spk = pids[1] if spk == pids[0] else pids[0]
            p = pri[spk]
            if rng.random() < p.overlap_prob:
                gap = -rng.uniform(0.15, cfg.max_overlap_s)
            else:
                gap = max(0.05, rng.normal(p.gap_mean, p.gap_std))
        cursor = max(cursor + AUDIO_RATE // 2, t_end + int(gap * AUDIO_RATE))

    # backchannels in the partner's pauses (nods are motion-only; some are spoken)
    nod_frames = {p: [] for p in pids}
    for listener in pids:
        talker = pids[1] if listener == pids[0] else pids[0]
        lp = pri[listener]
        for a, b in _pauses(tracks[talker].segments, int(0.2 * AUDIO_RATE)):
            if not tracks[listener].is_free(a - AUDIO_RATE // 5, a + AUDIO_RATE // 2):
                continue
            if rng.random() < lp.backchannel_prob:
                nod_frames[listener].append(int((a + rng.normal(0.2, 0.08) * AUDIO_RATE) // SAMPLES_PER_FRAME))
            if b - a >= int(0.35 * AUDIO_RATE) and rng.random() < lp.verbal_backchannel_prob and listener != silent:
                start = a + int(rng.uniform(0.05, 0.2) * AUDIO_RATE)
                utt = synthesize(str(rng.choice(BACKCHANNELS)), voices[listener])
                if tracks[listener].is_free(start, start + utt.wave.shape[0]) and start + utt.wave.shape[0] < n:
                    s0, s1 = tracks[listener].place(utt, start, gains[listener] * 0.8)
                    turns.append({"speaker": listener, "start": int(s0), "end": int(s1), "kind": "backchannel"})

    audio, motion, speaking, rooms = {}, {}, {}, {}
    for p in pids:
        tr = tracks[p]
        if ac is None:
            x = tr.audio + rng.normal(0.0, cfg.noise_floor, n).astype(np.float32)
            audio[p] = np.clip(x, -1.0, 1.0).astype(np.float32)
        else:
            cond = draw_condition(room_rng, ac)
            babble = _babble_speech(room_rng) if cond.noise == "babble" else None
            audio[p] = apply_condition(tr.audio, _active_samples(tr.segments, n), cond, babble, cfg.noise_floor)
            rooms[p] = cond.to_json()
        speaking[p] = _speaking_mask(tr.segments, n_frames)
        # spontaneous nods while listening (thinned by the listening mask)
        spont = _poisson_times(rng, np.where(speaking[p], 0.0, pri[p].nod_rate), fps)
        nods = sorted(set(nod_frames[p]) | set(int(f) for f in spont))
        accents = sorted({w // SAMPLES_PER_FRAME for w in tr.word_starts if rng.random() < 0.3})
        art = ArticulationConfig(articulation=float(rng.uniform(0.85, 1.15)),
                                 lip_asymmetry=float(rng.uniform(-0.06, 0.06)))
        mouth = mouth_blendshapes(tr.segments, tr.audio, n_frames, art)
        motion[p] = _behaviour(rng, pri[p], mouth, speaking[p], nods, accents, fps)

    meta = {"source": "synthetic", "generator_version": 2, "voices": {p: asdict(voices[p]) for p in pids},
            "turns": sorted(turns, key=lambda t: t["start"]), "backchannel_nod_frames": nod_frames,
            "phones": {p: [[sym, int(s), int(e)] for sym, s, e in tracks[p].segments] for p in pids}}
    if ac is not None:
        meta["acoustics"] = {"tracks": rooms, "silent_participant": silent}
    return Clip(clip_id, pids, audio, motion, speaking, relation, ARKIT_LAYOUT.basis, {p: "" for p in pids},
                fps, {}, meta)


__all__ = ["ConversationConfig", "generate_conversation", "random_voice", "SENTENCES", "BACKCHANNELS",
           "JAW_RAD_PER_OPEN", "GAZE_RAD_FULL"]
