"""Limits on every input message, and the checks the nodes run at the boundary. Pure Python (no rclpy).

    class MotionConfig(RelationFields, InputLimits): ...     # a node's config carries the limits as parameters
    why = check_audio(msg, cfg, "alice", now_ns)    # None = accepted, else a Rejection(cause, detail)
    if why is None:
        x = audio_from_msg(msg)[:, 0]               # ros/convert.py decodes ...
        why = check_samples(x, cfg)                 # ... and the decoded content is checked too
    if why is not None:
        node.reject(why.cause, f"AudioFrame on {topic}: {why.detail}")   # the lifecycle adapter's counter:
                                                    # by cause on /diagnostics (WARN), logged once per cause per period

The checks read messages by their field names (msg/*.msg) and never decode large payloads themselves, so a
message is refused for its declared size before anything proportional to it is allocated. Each ``Rejection``
carries a short ``cause`` (a diagnostics key, one of CAUSES) and a one-line ``detail`` that quotes at most
``InputLimits.max_quote_chars`` of anything the sender wrote.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from rsatalker_ros.face.head_data import MAX_HEAD_VERTICES
from rsatalker_ros.motion.layout import AUDIO_RATE
from rsatalker_ros.stages.params import check_value, param, specs

# enum values of msg/*.msg (kept here so that this module needs no built interfaces; test_input_limits compares)
AUDIO_FORMATS = {0: 2, 1: 4}          # AudioFrame.FORMAT_S16LE, FORMAT_F32LE -> bytes per sample
ROLES = (0, 1)                        # SocialMotion.ROLE_LISTENING, ROLE_SPEAKING
ACTIVITIES = (0, 1, 2)                # ConversationState.ACTIVITY_SILENCE, SINGLE, OVERLAP
KINSHIPS = (0, 1)                     # SocialRelation.KINSHIP_BLOOD, KINSHIP_NON_BLOOD
HIERARCHIES = (0, 1)                  # SocialRelation.HIERARCHY_EQUAL, HIERARCHY_UNEQUAL
EXPRESSION_SIZES = {"arkit52": 52, "flame50": 50, "flame100": 100}   # FlameParams.BASIS_* -> coefficients
_PARTICIPANT_ID = re.compile(r"[a-z][a-z0-9_]*\Z")

CAUSES = ("participant", "stamp_future", "stamp_past", "format", "size", "non_finite", "range", "string", "enum",
          "topology")


@dataclass(frozen=True)
class Rejection:
    cause: str      # one of CAUSES: what kind of problem (diagnostics count per cause)
    detail: str     # one line for the log: the field, what it held (shortened), what was expected


@dataclass(frozen=True)
class InputLimits:
    """What a node accepts: a config mixin, so every limit is a node parameter of the same name (declared by the
    lifecycle adapter from these fields, in config/<node>.yaml, changeable while running except sample_rate).
    The checks below take any object with these attributes: a node passes its config."""
    sample_rate: int = param(AUDIO_RATE, "AudioFrame.sample_rate the node expects; other rates are rejected",
                             units="Hz", low=AUDIO_RATE, high=AUDIO_RATE)
    max_chunk_s: float = param(1.0, "longest AudioFrame; longer ones are refused by their declared size, before "
                               "decoding", units="s", low=0.01, high=10.0, runtime=True)
    max_abs_sample: float = param(1.0, "largest |sample| of decoded audio, full scale = 1.0 (F32LE may not exceed "
                                  "it)", low=1e-6, high=1e6, runtime=True)
    max_string_chars: int = param(256, "longest id, label, topology id or conversation id", units="characters",
                                  low=1, high=1 << 20, runtime=True)
    max_participants: int = param(16, "most ConversationState.participant_ids", low=1, high=1024, runtime=True)
    max_vertices: int = param(MAX_HEAD_VERTICES, "most FaceMesh / FaceTopology vertices", low=3,
                              high=MAX_HEAD_VERTICES, runtime=True)
    max_triangles: int = param(2 * MAX_HEAD_VERTICES, "most FaceTopology triangles", low=1,
                               high=2 * MAX_HEAD_VERTICES, runtime=True)
    max_abs_vertex_m: float = param(10.0, "largest |coordinate| of a FaceMesh vertex in the head frame", units="m",
                                    low=1e-3, high=1e6, runtime=True)
    max_abs_param: float = param(10.0, "largest |value| of a FlameParams coefficient or angle", low=1e-3, high=1e6,
                                 runtime=True)
    max_future_s: float = param(0.5, "how far an input's header.stamp (AudioFrame, ConversationState, FaceMesh, "
                                "SocialMotion) may lead this node's clock; more is refused (stamp_future): a frame "
                                "from the future would hold newer ones back", units="s", low=1e-3, high=3600.0,
                                runtime=True)
    max_age_s: float = param(30.0, "how far an input's header.stamp may lag this node's clock; more is refused "
                             "(stamp_past); 0 = no lower bound (e.g. replaying a bag with --keep-stamps)", units="s",
                             low=0.0, high=1e9, runtime=True)
    max_quote_chars: int = param(40, "how much of a sender's string a log line quotes", units="characters", low=1,
                                 high=4096, runtime=True)

    def __post_init__(self):
        for s in specs(InputLimits):     # the same ranges as the parameters, also for InputLimits(...) in code
            check_value(s, getattr(self, s.name))


def quote(text, limits: InputLimits) -> str:
    """repr of a sender's string, cut to limits.max_quote_chars (+ its full length when cut)."""
    s = str(text)
    if len(s) <= limits.max_quote_chars:
        return repr(s)
    return f"{s[:limits.max_quote_chars]!r}... ({len(s)} characters)"


# --- pieces ---------------------------------------------------------------------------------------------------
def check_stamp(stamp, now_ns: int | None, limits: InputLimits, what: str = "header.stamp") -> Rejection | None:
    """stamp: builtin_interfaces/Time-like (sec, nanosec); now_ns: the node's clock [ns] (None = not checked)."""
    sec, nsec = int(getattr(stamp, "sec", 0)), int(getattr(stamp, "nanosec", 0))
    if not 0 <= nsec < 1_000_000_000:
        return Rejection("range", f"{what}.nanosec is {nsec}; expected 0..999999999")
    if now_ns is None:
        return None
    lead = (sec * 1_000_000_000 + nsec - now_ns) / 1e9
    if lead > limits.max_future_s:
        return Rejection("stamp_future", f"{what} is {lead:.3f} s ahead of this node's clock; at most "
                                         f"{limits.max_future_s} s accepted (max_future_s)")
    if limits.max_age_s and -lead > limits.max_age_s:
        return Rejection("stamp_past", f"{what} is {-lead:.3f} s behind this node's clock; at most "
                                       f"{limits.max_age_s} s accepted (max_age_s)")
    return None


def check_string(value, what: str, limits: InputLimits) -> Rejection | None:
    if not isinstance(value, str):
        return Rejection("string", f"{what} is a {type(value).__name__}; expected a string")
    if len(value) > limits.max_string_chars:
        return Rejection("string", f"{what} has {len(value)} characters; at most {limits.max_string_chars} "
                                   "accepted (max_string_chars)")
    return None


def check_participant_id(value, what: str, limits: InputLimits, expected: str | None = None,
                         allow_empty: bool = False) -> Rejection | None:
    """A REP-144 id ([a-z][a-z0-9_]*); ``expected``: the only id accepted here (e.g. the topic's participant)."""
    why = check_string(value, what, limits)
    if why is not None:
        return why
    if allow_empty and value == "":
        return None
    if not _PARTICIPANT_ID.match(value):
        return Rejection("participant", f"{what} is {quote(value, limits)}; expected an id [a-z][a-z0-9_]*")
    if expected is not None and value != expected:
        return Rejection("participant", f"{what} is {quote(value, limits)} on the topic of {expected!r}")
    return None


def check_values(values, what: str, bound: float, cause_range: str = "range") -> Rejection | None:
    """Finite and |v| <= bound for a float array (vectorised)."""
    a = np.asarray(values, dtype=np.float64)
    if a.size and not np.isfinite(a).all():
        return Rejection("non_finite", f"{what} holds {int((~np.isfinite(a)).sum())} NaN or infinite values; "
                                       "expected finite numbers")
    if a.size and np.abs(a).max() > bound:
        return Rejection(cause_range, f"{what} reaches {float(np.abs(a).max()):.3g}; expected |value| <= {bound:g}")
    return None


def _first(*checks) -> Rejection | None:
    """The first rejection among already-evaluated checks or zero-argument callables (evaluated lazily)."""
    for c in checks:
        r = c() if callable(c) else c
        if r is not None:
            return r
    return None


# --- message kinds --------------------------------------------------------------------------------------------
def check_audio(msg, limits: InputLimits, participant: str, now_ns: int | None = None) -> Rejection | None:
    """AudioFrame before decoding: participant, stamp, format, rate, channels (mono), declared size."""
    if msg.sample_format not in AUDIO_FORMATS:
        return Rejection("enum", f"AudioFrame.sample_format is {msg.sample_format}; expected FORMAT_S16LE (0) or "
                                 "FORMAT_F32LE (1)")
    width = AUDIO_FORMATS[msg.sample_format]
    n_bytes = len(msg.data)
    max_bytes = int(limits.max_chunk_s * limits.sample_rate) * width
    # the first failing check, in this order (plain ifs: ~100 chunks a second reach this in a motion node)
    why = check_participant_id(msg.participant_id, "AudioFrame.participant_id", limits, expected=participant)
    if why is None:
        why = check_stamp(msg.header.stamp, now_ns, limits, "AudioFrame.header.stamp")
    if why is not None:
        return why
    if msg.sample_rate != limits.sample_rate:
        return Rejection("format", f"AudioFrame.sample_rate is {msg.sample_rate} Hz; expected {limits.sample_rate} Hz")
    if msg.channels != 1:
        return Rejection("format", f"AudioFrame.channels is {msg.channels}; expected 1 (one participant per topic)")
    if not 0 < n_bytes <= max_bytes:
        return Rejection("size", f"AudioFrame.data has {n_bytes} bytes; expected 1..{max_bytes} ({limits.max_chunk_s} "
                                 "s, max_chunk_s)")
    if n_bytes % width:
        return Rejection("size", f"AudioFrame.data has {n_bytes} bytes, not a multiple of {width} bytes per sample")
    return None


def check_samples(samples: np.ndarray, limits: InputLimits) -> Rejection | None:
    """Decoded audio (float, full scale 1.0): finite and within max_abs_sample (failure 1 of issue #11: F32LE
    samples of 1e18 were finite and accepted)."""
    return check_values(samples, "AudioFrame samples", limits.max_abs_sample)


def check_relation(msg, limits: InputLimits, participants=None, what: str = "SocialRelation") -> Rejection | None:
    """SocialRelation: enums, label / senior id lengths, senior among ``participants`` (when given), confidence."""
    return _first(
        None if msg.kinship in KINSHIPS else Rejection("enum", f"{what}.kinship is {msg.kinship}; expected 0 or 1"),
        None if msg.hierarchy in HIERARCHIES else Rejection(
            "enum", f"{what}.hierarchy is {msg.hierarchy}; expected 0 or 1"),
        lambda: check_string(msg.label, f"{what}.label", limits),
        lambda: check_participant_id(msg.senior_participant_id, f"{what}.senior_participant_id", limits,
                                     allow_empty=msg.hierarchy == 0),
        lambda: None if participants is None or msg.senior_participant_id in ("", *participants) else Rejection(
            "participant", f"{what}.senior_participant_id {quote(msg.senior_participant_id, limits)} is not one of "
                           f"{list(participants)}"),
        lambda: None if math.isfinite(msg.confidence) and 0.0 <= msg.confidence <= 1.0 else Rejection(
            "range", f"{what}.confidence is {msg.confidence}; expected 0.0 .. 1.0"))


def check_conversation(msg, limits: InputLimits, now_ns: int | None = None) -> Rejection | None:
    """ConversationState: stamp, ids (valid, distinct, at most max_participants), active speaker, activity,
    one speaking probability in [0, 1] per participant, the relation."""
    ids = list(msg.participant_ids)
    if len(ids) > limits.max_participants:
        return Rejection("size", f"ConversationState has {len(ids)} participants; at most {limits.max_participants}")
    return _first(
        check_stamp(msg.header.stamp, now_ns, limits, "ConversationState.header.stamp"),
        lambda: check_string(msg.conversation_id, "ConversationState.conversation_id", limits),
        lambda: _first(*(check_participant_id(p, f"ConversationState.participant_ids[{i}]", limits)
                         for i, p in enumerate(ids))),
        lambda: None if len(set(ids)) == len(ids) else Rejection(
            "participant", "ConversationState.participant_ids repeats an id"),
        lambda: None if msg.active_speaker in ("", *ids) else Rejection(
            "participant", f"ConversationState.active_speaker {quote(msg.active_speaker, limits)} is not one of "
                           "participant_ids"),
        lambda: None if msg.activity in ACTIVITIES else Rejection(
            "enum", f"ConversationState.activity is {msg.activity}; expected 0, 1 or 2"),
        lambda: None if len(msg.speaking_probability) == len(ids) else Rejection(
            "size", f"ConversationState.speaking_probability has {len(msg.speaking_probability)} values for "
                    f"{len(ids)} participants"),
        lambda: check_values(np.asarray(msg.speaking_probability, np.float64) - 0.5,
                             "ConversationState.speaking_probability - 0.5", 0.5),
        lambda: check_relation(msg.relation, limits, ids, "ConversationState.relation"))


def check_flame_params(params, limits: InputLimits, what: str = "FlameParams") -> Rejection | None:
    basis = params.expression_basis
    if basis not in EXPRESSION_SIZES:
        return Rejection("enum", f"{what}.expression_basis is {quote(basis, limits)}; expected one of "
                                 f"{list(EXPRESSION_SIZES)}")
    if len(params.expression) != EXPRESSION_SIZES[basis]:
        return Rejection("size", f"{what}.expression has {len(params.expression)} values; basis {basis} has "
                                 f"{EXPRESSION_SIZES[basis]}")
    if len(params.shape) > 300:
        return Rejection("size", f"{what}.shape has {len(params.shape)} values; at most 300")
    return _first(*(lambda name=name: check_values(getattr(params, name), f"{what}.{name}", limits.max_abs_param)
                    for name in ("expression", "jaw_pose", "neck_pose", "global_rotation", "eye_pose",
                                 "translation", "shape")))


def check_motion(msg, limits: InputLimits, participant: str, now_ns: int | None = None) -> Rejection | None:
    """SocialMotion for ``participant``'s renderer: the id (failure 2 of #11: another participant's motion was
    accepted), stamp, role, parameters, relation."""
    return _first(
        check_participant_id(msg.participant_id, "SocialMotion.participant_id", limits, expected=participant),
        lambda: check_stamp(msg.header.stamp, now_ns, limits, "SocialMotion.header.stamp"),
        lambda: None if msg.role in ROLES else Rejection("enum", f"SocialMotion.role is {msg.role}; expected 0 or 1"),
        lambda: check_flame_params(msg.params, limits, "SocialMotion.params"),
        lambda: check_relation(msg.relation, limits, None, "SocialMotion.relation"))


def check_mesh(msg, limits: InputLimits, participant: str, n_vertices: int | None = None,
               topology_id: str | None = None, now_ns: int | None = None) -> Rejection | None:
    """FaceMesh: participant, stamp within the window (failure 2 of #11: a mesh 1.9 s ahead froze the renderer),
    topology, vertex count, finite coordinates within max_abs_vertex_m."""
    n = len(msg.vertices)
    expect = limits.max_vertices if n_vertices is None else n_vertices
    return _first(
        check_participant_id(msg.participant_id, "FaceMesh.participant_id", limits, expected=participant),
        lambda: check_stamp(msg.header.stamp, now_ns, limits, "FaceMesh.header.stamp"),
        lambda: check_string(msg.topology_id, "FaceMesh.topology_id", limits),
        lambda: None if topology_id is None or msg.topology_id == topology_id else Rejection(
            "topology", f"FaceMesh.topology_id is {quote(msg.topology_id, limits)}; expected {topology_id!r}"),
        lambda: None if n % 3 == 0 and (n // 3 == expect if n_vertices is not None else 0 < n // 3 <= expect)
        else Rejection("size", f"FaceMesh.vertices has {n} values; expected 3 x "
                               f"{expect if n_vertices is not None else f'1..{expect}'} vertices"),
        lambda: check_values(msg.vertices, "FaceMesh.vertices", limits.max_abs_vertex_m))


def check_topology(msg, limits: InputLimits) -> Rejection | None:
    """FaceTopology: id, vertex count, triangle count, every index below vertex_count."""
    n = len(msg.triangles)
    why = _first(
        check_string(msg.topology_id, "FaceTopology.topology_id", limits),
        None if 3 <= msg.vertex_count <= limits.max_vertices else Rejection(
            "size", f"FaceTopology.vertex_count is {msg.vertex_count}; expected 3..{limits.max_vertices}"),
        None if n % 3 == 0 and 0 < n // 3 <= limits.max_triangles else Rejection(
            "size", f"FaceTopology.triangles has {n} values; expected 3 x 1..{limits.max_triangles}"))
    if why is None:
        top = int(np.asarray(msg.triangles, dtype=np.int64).max())
        if top >= msg.vertex_count:
            why = Rejection("topology", f"FaceTopology.triangles indexes vertex {top}; vertex_count is "
                                        f"{msg.vertex_count}")
    return why
