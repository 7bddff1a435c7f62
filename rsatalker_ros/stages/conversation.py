"""Conversation stage: every participant's audio -> who speaks, the turn index, overlaps, and the relationship.
Pure Python; rsatalker_ros.nodes.conversation wraps it.

mode 'vad': ``push_audio(pid, samples, stamp_ns, mono_s)`` runs each participant's voice activity (VoiceTimeline)
into the turn tracker and says whether the decision (speaker, turn, who speaks) changed, so the node publishes a
change at once and otherwise at ``rate_hz``; ``state(mono_s)`` reads the state at the audio clock's present (the
newest audio end time, advanced by the wall time since it arrived; never earlier than a state read before; the
node's clock until audio arrived). mode 'external': ``check_external`` validates a dialogue manager's
state instead. The relationship comes from the relation_* parameters or a SocialRelation message (RelationPolicy).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rsatalker_ros.audio.voice_activity import VadConfig
from rsatalker_ros.input_limits import InputLimits
from rsatalker_ros.ros.topics import check_participant_id
from rsatalker_ros.stages.params import param
from rsatalker_ros.stages.relation_policy import RelationFields, RelationPolicy
from rsatalker_ros.stages.turn_taking import TurnConfig, TurnState, TurnTracker, VoiceTimeline

_TURN = TurnConfig()


@dataclass(frozen=True)
class ConversationConfig(RelationFields, InputLimits):
    participants: tuple = param(("alice", "bob"), "participant ids (ROS4HRI voice ids, REP-144 names), in a fixed "
                                "order")
    conversation_id: str = param("conversation", "ConversationState.conversation_id", runtime=True)
    mode: str = param("vad", "vad: decide from the audio; external: follow a dialogue manager's ConversationState "
                      "on external_topic", choices=("vad", "external"))
    external_topic: str = param("/dialogue_manager/conversation", "mode external: the ConversationState topic to "
                                "follow")
    rate_hz: float = param(10.0, "ConversationState publish rate (mode vad) while nothing changes; a change of "
                           "speaker, turn or who is speaking is published at once", units="Hz", low=1.0, high=100.0)
    vad_backend: str = param("auto", "voice activity: auto (silero-vad when installed), silero, or energy",
                             choices=("auto", "silero", "energy"))
    vad_threshold: float = param(_TURN.threshold, "speech probability at or above which audio counts as speech",
                                 low=0.01, high=0.99, runtime=True)
    min_speech_s: float = param(_TURN.min_speech_s, "speech must last this long to count", units="s", low=0.0,
                                high=5.0, runtime=True)
    hangover_s: float = param(_TURN.hangover_s, "silence must last this long to end speech", units="s", low=0.0,
                              high=5.0, runtime=True)
    audio_timeout_s: float = param(1.0, "diagnostics: a participant without audio for this long is reported "
                                   "(WARN)", units="s", low=0.1, high=60.0, runtime=True)

    def __post_init__(self):
        super().__post_init__()                  # the input limits
        for p in self.participants:
            check_participant_id(p)
        if len(set(self.participants)) != len(self.participants):
            raise ValueError(f"participants must be distinct ids, got {list(self.participants)}")

    def turn_config(self) -> TurnConfig:
        return TurnConfig(self.vad_threshold, self.min_speech_s, self.hangover_s)


@dataclass
class ConversationSnapshot:
    stamp_ns: int                      # audio-clock time the state describes
    turn: TurnState
    probabilities: list = field(default_factory=list)   # per participant, in config order


class ConversationStage:
    def __init__(self, cfg: ConversationConfig):
        self.cfg = cfg
        self.relation = RelationPolicy(cfg, cfg.participants)
        self.voices, self.tracker = {}, None
        if cfg.mode == "vad":
            vad = VadConfig(backend=cfg.vad_backend, threshold=cfg.vad_threshold)
            self.voices = {p: VoiceTimeline(vad, cfg.sample_rate) for p in cfg.participants}
            self.tracker = TurnTracker(list(cfg.participants), cfg.turn_config())
        self.latest_audio: dict[str, tuple[int, float]] = {}   # pid -> (audio-clock ns at its end, monotonic s)
        self.states = 0
        self._last_stamp_ns = 0

    @property
    def vad_backend(self) -> str:
        return next(iter(self.voices.values())).backend_name if self.voices else "none (external)"

    def reconfigure(self, cfg: ConversationConfig) -> str:
        """Runtime parameters: thresholds, relationship, limits. Returns a note for the log ('' if none)."""
        note = self.relation.from_parameters(cfg)
        if self.tracker is not None:
            self.tracker.set_config(cfg.turn_config())
        self.cfg = cfg
        return note

    def push_audio(self, pid: str, samples: np.ndarray, stamp_ns: int, mono_s: float) -> bool:
        """samples [n] float32 (already validated), stamp_ns: capture time of samples[0]. True when the decision
        (active speaker, turn index, who is speaking) changed."""
        decisions = self.voices[pid].push(samples, stamp_ns / 1e9)
        self.latest_audio[pid] = (stamp_ns + int(samples.shape[0] * 1e9 / self.cfg.sample_rate), mono_s)
        if not decisions:                      # a block that completed no 32 ms chunk changes nothing
            return False
        before = self.tracker.decision()
        for prob, end_s in decisions:
            self.tracker.update(pid, prob, end_s)
        return self.tracker.decision() != before

    def audio_now_ns(self, mono_s: float, fallback_ns: int) -> int:
        """The audio clock now: the newest audio end time, advanced by the wall time since it arrived."""
        if not self.latest_audio:
            return fallback_ns
        end_ns, mono = max(self.latest_audio.values())
        return end_ns + int((mono_s - mono) * 1e9)

    def state(self, mono_s: float, fallback_ns: int) -> ConversationSnapshot:
        now_ns = self.audio_now_ns(mono_s, fallback_ns)
        if self.latest_audio:                  # on the audio clock: never before a state already given
            now_ns = self._last_stamp_ns = max(now_ns, self._last_stamp_ns)
        st = self.tracker.state(now_ns / 1e9)
        self.states += 1
        return ConversationSnapshot(now_ns, st, [float(st.probability[p]) for p in self.cfg.participants])

    def silent_streams(self, mono_s: float) -> list[str]:
        """Participants whose audio has not arrived for audio_timeout_s (or never)."""
        return [p for p in self.cfg.participants
                if mono_s - self.latest_audio.get(p, (0, -1e9))[1] > self.cfg.audio_timeout_s]


def check_external(participant_ids, active_speaker: str, activity: int, probabilities, check_relation) -> dict:
    """A dialogue manager's ConversationState fields -> {pid: speaking}; ValueError naming what is wrong.
    ``check_relation()`` validates the state's relationship (raises ValueError)."""
    n = len(participant_ids)
    if n == 0 or len(probabilities) != n:
        raise ValueError(f"{n} participant_ids but {len(probabilities)} speaking_probability values; expected "
                         "one per participant")
    if activity not in (0, 1, 2):
        raise ValueError(f"activity is {activity}; expected ACTIVITY_SILENCE/SINGLE/OVERLAP (0..2)")
    if active_speaker and active_speaker not in participant_ids:
        raise ValueError(f"active_speaker {active_speaker!r} is not in participant_ids")
    probs = np.asarray(probabilities, np.float64)
    if not np.all(np.isfinite(probs)) or probs.min() < 0 or probs.max() > 1:
        raise ValueError("speaking_probability must hold values in [0, 1]")
    check_relation()
    return {p: pr > 0.5 for p, pr in zip(participant_ids, probs)}
