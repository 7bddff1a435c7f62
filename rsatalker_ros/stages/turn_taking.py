"""Who holds the turn: per-participant speech probabilities over time -> speaker, activity, turn index.

Pure Python (no rclpy). ``VoiceTimeline`` turns one participant's audio into speech probabilities on the audio
clock (the one voice-activity path of the graph: the conversation stage feeds every participant's into a
``TurnTracker``, the motion stage its own participant's into a ``SpeechGate``).

Each participant's speech decision has hysteresis: speech starts once the probability stays at or above
``threshold`` for ``min_speech_s`` and ends once it stays below for ``hangover_s`` (short pauses inside a sentence
do not end a turn). From those decisions:
  - activity: SILENCE (nobody speaks), SINGLE (one speaks), OVERLAP (two or more speak);
  - active speaker: the one speaking in SINGLE; in OVERLAP the one who held the turn before the overlap (if the
    overlap started from silence, the one who started first); "" in SILENCE;
  - turn index: 0-based count of speaker changes: the first speaker opens turn 0, every later change of the active
    speaker to somebody else adds one; silence and the same speaker resuming do not.
"""

from dataclasses import dataclass, field

import numpy as np

from rsatalker_ros.audio.voice_activity import CHUNK, VadConfig, VoiceActivityDetector

SILENCE, SINGLE, OVERLAP = 0, 1, 2   # = ConversationState.ACTIVITY_*


@dataclass
class TurnConfig:
    threshold: float = 0.5     # speech probability at or above which a chunk counts as speech
    min_speech_s: float = 0.1  # seconds of speech before a participant counts as speaking
    hangover_s: float = 0.35   # seconds of non-speech before a speaking participant counts as silent
    stale_s: float = 0.5       # a participant without audio for this long counts as silent (probability 0)

    def __post_init__(self):
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.min_speech_s < 0 or self.hangover_s < 0 or self.stale_s <= 0:
            raise ValueError("min_speech_s and hangover_s must be >= 0 s and stale_s > 0 s, got "
                             f"{self.min_speech_s}, {self.hangover_s}, {self.stale_s}")


@dataclass
class SpeechGate:
    """One participant's speech decision with hysteresis. ``update(prob, t)`` -> speaking (bool)."""
    cfg: TurnConfig
    speaking: bool = False
    _since: float | None = None    # time the probability first crossed against the current decision

    def update(self, prob: float, t: float) -> bool:
        above = prob >= self.cfg.threshold
        if above != self.speaking:
            if self._since is None:
                self._since = t
            needed = self.cfg.min_speech_s if above else self.cfg.hangover_s
            if t - self._since >= needed - 1e-9:
                self.speaking, self._since = above, None
        else:
            self._since = None
        return self.speaking


class VoiceTimeline:
    """One participant's voice activity on the audio clock: ``push(samples [n] float32, start_s)`` -> [(speech
    probability, audio-clock seconds at the end of the 512-sample chunk it describes)] for the chunks completed."""

    def __init__(self, vad: VadConfig, sample_rate: int):
        self.vad = VoiceActivityDetector(vad)
        self.rate = int(sample_rate)
        self._pending = 0               # samples of the next chunk already pushed

    @property
    def backend_name(self) -> str:
        return self.vad.backend_name

    def push(self, samples: np.ndarray, start_s: float) -> list:
        before = self._pending
        probs = self.vad.push(samples)
        self._pending = (before + samples.shape[0]) % CHUNK
        return [(float(p), start_s + ((j + 1) * CHUNK - before) / self.rate) for j, p in enumerate(probs)]

    def reset(self) -> None:
        self.vad.reset()
        self._pending = 0


@dataclass
class TurnState:
    active_speaker: str
    activity: int
    turn_index: int
    speaking: dict
    probability: dict


@dataclass
class TurnTracker:
    """Feed ``update(pid, prob, t)`` for every voice-activity decision (t = audio-clock seconds at the end of the
    chunk it describes); read ``state(now)`` at any rate."""
    participants: list
    cfg: TurnConfig = field(default_factory=TurnConfig)

    def __post_init__(self):
        if len(set(self.participants)) != len(self.participants) or not self.participants:
            raise ValueError(f"participants must be distinct ids, got {self.participants}")
        self._gates = {p: SpeechGate(self.cfg) for p in self.participants}
        self._prob = {p: 0.0 for p in self.participants}
        self._last_t = {p: None for p in self.participants}
        self._holder = ""           # who holds the turn (kept through silence, for counting changes)
        self._started: dict = {}    # pid -> time it started speaking (for overlaps from silence)
        self._turn = -1
        self._active = ""

    def set_config(self, cfg: TurnConfig) -> None:
        """New thresholds from the next update on; every participant's decision so far stays."""
        self.cfg = cfg
        for g in self._gates.values():
            g.cfg = cfg

    def update(self, pid: str, prob: float, t: float) -> None:
        if pid not in self._gates:
            raise ValueError(f"unknown participant {pid!r}; expected one of {self.participants}")
        prob = float(prob)
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"speech probability must be in [0, 1], got {prob}")
        was = self._gates[pid].speaking
        now = self._gates[pid].update(prob, t)
        self._prob[pid], self._last_t[pid] = prob, t
        if now and not was:
            self._started[pid] = t
        elif was and not now:
            self._started.pop(pid, None)
        self._decide()

    def _expire(self, now: float) -> None:
        for p in self.participants:
            last = self._last_t[p]
            if last is not None and now - last > self.cfg.stale_s and (self._gates[p].speaking or self._prob[p]):
                self._gates[p] = SpeechGate(self.cfg)
                self._prob[p] = 0.0
                self._started.pop(p, None)
        self._decide()

    def _decide(self) -> None:
        talking = [p for p in self.participants if self._gates[p].speaking]
        if not talking:
            self._active = ""
            return
        if len(talking) == 1:
            speaker = talking[0]
        elif self._holder in talking:
            speaker = self._holder
        else:
            speaker = min(talking, key=lambda p: (self._started.get(p, 0.0), self.participants.index(p)))
        if speaker != self._holder:
            self._turn += 1
            self._holder = speaker
        self._active = speaker

    def decision(self) -> tuple:
        """What a listener acts on, cheap to compare: (active speaker, turn index, each participant speaking)."""
        return self._active, self._turn, tuple(self._gates[p].speaking for p in self.participants)

    def state(self, now: float | None = None) -> TurnState:
        """The current state; ``now`` (audio-clock seconds) lets participants whose audio stopped fall silent."""
        if now is not None:
            self._expire(now)
        talking = [p for p in self.participants if self._gates[p].speaking]
        activity = SILENCE if not talking else SINGLE if len(talking) == 1 else OVERLAP
        return TurnState(self._active, activity, max(self._turn, 0),
                         {p: self._gates[p].speaking for p in self.participants}, dict(self._prob))
