"""Motion stage (one per participant): own + partner audio (+ the conversation state) -> relationship-conditioned
face motion and the posed head mesh, 25 frames per second. Pure Python; rsatalker_ros.nodes.motion wraps it.

``push_audio(stream, samples, stamp_ns)`` places both streams on one audio clock (PairAligner), runs the own
participant's voice activity (for the SPEAKING / LISTENING role when no conversation node speaks), and feeds the
streaming model (StreamingMotion: the partner's motion it conditions on is the model's own live prediction), which
returns each 40 ms frame once its look-ahead has arrived. Aligned audio is held until it completes the next frame
(``StreamingMotion.samples_to_next_frame``) and then goes through the voice activity and the model at once: the
same frames at the same push, the same voice decisions, in half the calls (20 ms chunks, 40 ms frames). Frames are stamped with the audio-clock time of their
centre; the frame grid starts ``frame_phase_ms`` into the audio clock.

Lateness is bounded: given this node's clock on arrival (``now_ns``), a frame whose audio came more than
``max_lag_ms`` later than the most punctual frame since the stream (re)started is still stepped through the model, so the motion stays continuous and the same as
if nothing had been late, but neither skinned nor returned for publishing; ``skipped`` counts such frames by cause.
Skinning and publishing are most of a frame's cost, so a node that fell behind (its audio queue full after a
moment without CPU) catches up within a fraction of that backlog instead of staying that late for good. The lag
is relative to that most punctual frame (clock now - frame stamp, its minimum so far), so an offset between the
capture host's clock and this one, or replayed stamps, are not taken for lateness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rsatalker_ros.audio.voice_activity import VadConfig
from rsatalker_ros.input_limits import InputLimits
from rsatalker_ros.motion.layout import AUDIO_RATE, SAMPLES_PER_FRAME
from rsatalker_ros.ros.topics import check_participant_id
from rsatalker_ros.social.relation import Relation
from rsatalker_ros.stages.frames import head_rotation
from rsatalker_ros.stages.params import param
from rsatalker_ros.stages.relation_policy import RelationFields, RelationPolicy
from rsatalker_ros.stages.stream_align import AlignConfig, PairAligner
from rsatalker_ros.stages.turn_taking import SpeechGate, TurnConfig, VoiceTimeline

FRAME_MS = 1000.0 * SAMPLES_PER_FRAME / AUDIO_RATE
CONVERSATION_FRESH_S = 0.5      # the conversation node's speaking decision counts while this recent


@dataclass(frozen=True)
class MotionConfig(RelationFields, InputLimits):
    participant: str = param("alice", "whose face this node moves")
    partner: str = param("bob", "the other participant of the conversation")
    head: str = param("default_older", "head model: default_older, default_younger, a baked .npz or a FLAME .pkl")
    checkpoint: str = param("", "motion model checkpoint (.safetensors); '' = the shipped motion_default")
    torch_threads: int = param(1, "CPU threads for the motion model (two motion nodes share 2 cores)", low=1,
                               high=64)
    relation_source: str = param("conversation", "conversation: follow ConversationState.relation (the relation_* "
                                 "parameters until one arrives); parameters: the relation_* parameters only",
                                 choices=("conversation", "parameters"), runtime=True)
    marker_rate_hz: float = param(0.2, "rviz2 TRIANGLE_LIST marker rate while the marker topic has a subscriber; "
                                  "0 = no marker (one marker costs ~0.1 s of CPU)", units="Hz", low=0.0, high=25.0, runtime=True)
    publish_mesh: bool = param(True, "publish the posed mesh (FaceMesh, the renderer's input) every frame",
                               runtime=True)
    world_frame: str = param("world", "parent frame of <participant>/head on /tf_static and head_pose",
                             runtime=True)
    head_position: tuple = param((0.0, 0.0, 1.2), "head frame origin in world_frame (x forward, y left, z up)",
                                 units="m", low=-100.0, high=100.0, runtime=True)
    head_yaw_deg: float = param(0.0, "head heading about world z; 0 = facing +x", units="deg", low=-360.0,
                                high=360.0, runtime=True)
    max_partner_lag_s: float = param(0.2, "a stream lagging the other by more than this counts as silent",
                                     units="s", low=0.02, high=5.0)
    frame_phase_ms: float = param(0.0, "start of this node's 40 ms frame grid on the audio clock, below 40; "
                                  "bringup and the launch files add 40 / n ms per participant so their frames, "
                                  "and renders, take turns on the CPU", units="ms", low=0.0, high=FRAME_MS - 1e-3)
    vad_backend: str = param("energy", "own-voice activity for SocialMotion.role when no ConversationState "
                             "arrives", choices=("energy", "silero", "auto"))
    max_lag_ms: float = param(120.0, "frames whose audio arrives this much later than the most punctual frame "
                              "since the stream started (clock now - stamp) are computed (the motion stays "
                              "continuous) but not skinned or published, so a node that fell behind catches up "
                              "(normal: 0-25 ms, chunk granularity and transport; 120 puts a mesh about where the "
                              "renderer's max_frame_age_ms 200 drops it as stale); 0 = publish every frame however "
                              "late", units="ms", low=0.0, high=10000.0, runtime=True)
    target_latency_ms: float = param(150.0, "diagnostics: frame stamp (audio capture) to publish, p95 above this "
                                     "is WARN (it includes the model's look-ahead)", units="ms", low=1.0,
                                     high=10000.0, runtime=True)

    def __post_init__(self):
        super().__post_init__()                  # the input limits
        check_participant_id(self.participant)
        check_participant_id(self.partner)
        if self.partner == self.participant:
            raise ValueError(f"partner must differ from participant, both are {self.participant!r}")
        if len(self.head_position) != 3:
            raise ValueError(f"head_position has {len(self.head_position)} values; expected 3 (x, y, z in metres)")


@dataclass
class MotionFrame:
    stamp_ns: int                    # audio-clock time of the frame's centre
    motion: np.ndarray               # [D] float32, the head model's motion layout
    vertices: np.ndarray | None      # [V, 3] float32 posed mesh in the head frame (None: publish_mesh false)


class MotionStage:
    def __init__(self, cfg: MotionConfig):
        import torch

        from rsatalker_ros.face.head_model import load_head
        from rsatalker_ros.face.live_skin import LiveSkinner
        from rsatalker_ros.motion.checkpoint import load_model
        from rsatalker_ros.motion.streaming import StreamingMotion
        self.torch = torch
        torch.set_num_threads(cfg.torch_threads)
        self.cfg = cfg
        self.relation = RelationPolicy(cfg, (cfg.participant, cfg.partner))
        self.model, self.checkpoint_info = load_model(cfg.checkpoint or None)
        self.head = load_head(cfg.head)
        if self.head.layout.dim != self.model.cfg.motion_dim or self.head.basis != self.model.cfg.basis:
            raise ValueError(f"head {cfg.head!r} takes {self.head.basis} motion of {self.head.layout.dim} values; "
                             f"the checkpoint predicts {self.model.cfg.basis} of {self.model.cfg.motion_dim}")
        self.layout = self.head.layout
        self.skin = LiveSkinner(self.head)          # head.from_motion for a few frames at a time, 2x cheaper
        self.topology_id = self.head.name or cfg.head
        self.faces = self.head.faces.numpy().astype(np.int64)          # [F, 3]
        self.stream = StreamingMotion(self.model, self.relation.relation, cfg.participant, cfg.partner)
        self.aligner = PairAligner(AlignConfig(sample_rate=cfg.sample_rate, max_lag_s=cfg.max_partner_lag_s))
        self.voice = VoiceTimeline(VadConfig(backend=cfg.vad_backend), cfg.sample_rate)
        self.gate = SpeechGate(TurnConfig())
        # the frame grid starts `lead` samples before the stream: that much silence goes into the model first
        self.lead = int(round(cfg.frame_phase_ms * cfg.sample_rate / 1000.0))
        self._lead_due = True
        self.turn_index = 0
        self._conv_speaking: tuple[bool, float] | None = None   # (speaking, monotonic s) from the conversation
        self._last_marker = -1e9
        self.frames_computed = 0                      # frames the model stepped through (published or skipped)
        self.skipped = {"late_audio": 0}              # frames computed but not published, by cause
        self.last_skip_lag_ms = 0.0                   # audio lag of the last skipped frame
        self._delay_floor_ns: int | None = None       # least (clock now - frame stamp) since the stream (re)started
        self._held: list = []                         # aligned (own, partner) audio not yet given to the model
        self._held_start = 0                          # clock index of its first sample
        self._warm_up()

    def _warm_up(self) -> None:
        """A few frames of silence through the model and the skinning, then a fresh stream: numba's compiled
        kernels load (seconds on a loaded machine) here, at configure, not in the first audio callback of a live
        stream (where they held the first frames back, and a Ctrl-C up to the next frame)."""
        silence = np.zeros(4 * SAMPLES_PER_FRAME, np.float32)
        frames = self.stream.push(silence, silence)
        if frames:
            self.skin(np.stack([m for _, m in frames]).astype(np.float32))
        self.stream.reset()

    @property
    def lookahead_ms(self) -> float:
        return self.stream.lookahead_ms

    # ---- parameters and the relationship ----------------------------------------------------------------------
    def reconfigure(self, cfg: MotionConfig) -> str:
        note = self.relation.from_parameters(cfg)
        self.cfg = cfg
        self.stream.set_relation(self.relation.relation)
        return note

    def on_conversation(self, turn_index: int, participant_ids: list, probabilities: list,
                        relation: Relation, mono_s: float) -> bool:
        """A ConversationState; True when it changed the relationship (relation_source 'conversation').
        ValueError when its relationship is refused (nothing else of it is taken then)."""
        follow = self.cfg.relation_source == "conversation"
        if follow:
            relation = self.relation.check(relation)
        self.turn_index = int(turn_index)
        me = self.cfg.participant
        if me in participant_ids and len(probabilities) == len(participant_ids):
            p = float(probabilities[list(participant_ids).index(me)])
            if math.isfinite(p):
                self._conv_speaking = (p > 0.5, mono_s)
        if follow and self.relation.heard(relation):
            self.stream.set_relation(relation)
            return True
        return False

    def speaking(self, mono_s: float) -> bool:
        """This participant's role: the conversation node's decision while its states keep coming, else this
        stage's own voice activity."""
        if self._conv_speaking is not None and mono_s - self._conv_speaking[1] < CONVERSATION_FRESH_S:
            return self._conv_speaking[0]
        return self.gate.speaking

    # ---- audio -> frames ------------------------------------------------------------------------------------
    def push_audio(self, stream: int, samples: np.ndarray, stamp_ns: int,
                   now_ns: int | None = None) -> tuple[list[MotionFrame], bool]:
        """stream 0 = own, 1 = partner; samples [n] float32 (validated); now_ns: this node's clock on arrival
        (None = no lateness bound). -> (new frames to publish, the audio clock restarted)."""
        self.aligner.push(stream, samples, stamp_ns)
        own, par, start, restarted = self.aligner.pop()
        if restarted:
            if self._held:                # the voice activity hears what it would have heard before the restart
                self._hear(np.concatenate([o for o, _ in self._held]), self._held_start)
                self._held.clear()
            self.stream.reset()
            self.voice.reset()
            self._lead_due = True
            self._delay_floor_ns = None
        if own.shape[0] == 0:
            return [], restarted
        if self._lead_due:
            self._lead_due = False
            if self.lead:
                silence = np.zeros(self.lead, np.float32)
                self.stream.push(silence, silence)
        # the voice activity and the model take the audio once it completes a frame (its look-ahead included): the
        # same frames at the same moment, and the same voice decisions before them, as chunk by chunk, in half
        # the calls with 20 ms chunks
        if not self._held:
            self._held_start = start
        self._held.append((own, par))
        if sum(o.shape[0] for o, _ in self._held) < self.stream.samples_to_next_frame:
            return [], restarted
        if len(self._held) > 1:
            own, par = (np.concatenate(x) for x in zip(*self._held))
        self._held.clear()
        self._hear(own, self._held_start)
        frames = self.stream.push(own, par)
        self.frames_computed += len(frames)
        centre = SAMPLES_PER_FRAME / 2 - self.lead
        stamps = [self.aligner.stamp_of(k * SAMPLES_PER_FRAME + centre) for k, _ in frames]
        if now_ns is not None and stamps:
            floor = now_ns - stamps[-1]
            self._delay_floor_ns = floor if self._delay_floor_ns is None else min(self._delay_floor_ns, floor)
        stale = [now_ns is not None and self._stale(s, now_ns) for s in stamps]
        keep = [i for i, late in enumerate(stale) if not late]
        if len(keep) < len(frames):
            self.skipped["late_audio"] += len(frames) - len(keep)
            self.last_skip_lag_ms = self.audio_lag_ms(stamps[stale.index(True)], now_ns)   # the oldest skipped
        if not keep:
            return [], restarted
        motion = np.stack([frames[i][1] for i in keep]).astype(np.float32)
        verts = self.skin(motion) if self.cfg.publish_mesh else None
        out = [MotionFrame(stamps[i], motion[j], None if verts is None else verts[j]) for j, i in enumerate(keep)]
        return out, restarted

    def _hear(self, own: np.ndarray, start: int) -> None:
        """This participant's voice activity over own audio [n] from clock index ``start``."""
        for prob, end_s in self.voice.push(own, start / self.cfg.sample_rate):
            self.gate.update(prob, end_s)

    def audio_lag_ms(self, frame_stamp_ns: int, now_ns: int) -> float:
        """How much later than the most punctual frame so far a frame's audio arrived at now_ns [ms]."""
        return (now_ns - frame_stamp_ns - (self._delay_floor_ns or 0)) / 1e6

    def _stale(self, frame_stamp_ns: int, now_ns: int) -> bool:
        return self.cfg.max_lag_ms > 0 and self.audio_lag_ms(frame_stamp_ns, now_ns) > self.cfg.max_lag_ms

    def marker_due(self, mono_s: float) -> bool:
        """Time for the next rviz2 marker (at most marker_rate_hz)?"""
        if self.cfg.marker_rate_hz <= 0 or mono_s - self._last_marker < 1.0 / self.cfg.marker_rate_hz:
            return False
        self._last_marker = mono_s
        return True

    def head_pose(self) -> tuple[list, np.ndarray]:
        """(origin [3] in world_frame [m], quaternion x, y, z, w) of the head frame."""
        return [float(v) for v in self.cfg.head_position], head_rotation(self.cfg.head_yaw_deg)
