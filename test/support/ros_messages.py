"""Fully populated example messages (no field left at its default) and a field-by-field comparison."""

import numpy as np

from rsatalker_ros.msg import (AudioFrame, ConversationState, FaceMesh, FaceTopology, FlameParams, SocialMotion,
                               SocialRelation)

MESSAGE_TYPES = {t.__name__: t for t in (AudioFrame, SocialRelation, ConversationState, FlameParams, SocialMotion,
                                         FaceMesh, FaceTopology)}


def _stamp(header, sec, nanosec, frame):
    header.stamp.sec, header.stamp.nanosec, header.frame_id = sec, nanosec, frame


def example(name: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    if name == "SocialRelation":
        m = SocialRelation(kinship=SocialRelation.KINSHIP_NON_BLOOD, hierarchy=SocialRelation.HIERARCHY_UNEQUAL,
                           senior_participant_id="teacher", label="teacher-student", confidence=0.75)
    elif name == "AudioFrame":
        m = AudioFrame(participant_id="alice", sample_rate=16000, channels=2, sample_format=AudioFrame.FORMAT_S16LE)
        _stamp(m.header, 1700000000, 123456789, "alice/mic")
        m.data = rng.integers(0, 256, size=2 * 2 * 320, dtype=np.uint8).tobytes()
    elif name == "ConversationState":
        m = ConversationState(conversation_id="kiosk_1", turn_index=7, participant_ids=["alice", "bob"],
                              active_speaker="bob", activity=ConversationState.ACTIVITY_OVERLAP,
                              speaking_probability=[0.625, 0.875], relation=example("SocialRelation"))
        _stamp(m.header, 42, 500, "")
    elif name == "FlameParams":
        m = FlameParams(expression_basis=FlameParams.BASIS_ARKIT52,
                        expression=rng.uniform(0, 1, 52).astype(np.float32).tolist(),
                        jaw_pose=[0.25, -0.01, 0.02], neck_pose=[0.1, 0.2, -0.3], global_rotation=[0.01, 0.02, 0.03],
                        eye_pose=[0.1, 0.2, 0.0, 0.1, 0.2, 0.0], translation=[0.0, 0.01, -0.02],
                        shape=rng.normal(size=10).astype(np.float32).tolist())
    elif name == "SocialMotion":
        m = SocialMotion(participant_id="bob", role=SocialMotion.ROLE_SPEAKING, params=example("FlameParams", 1),
                         relation=example("SocialRelation"), turn_index=3)
        _stamp(m.header, 12, 40_000_000, "bob/head")
    elif name == "FaceMesh":
        m = FaceMesh(participant_id="alice", topology_id="default_older",
                     vertices=rng.normal(scale=0.1, size=4538 * 3).astype(np.float32))
        _stamp(m.header, 12, 80_000_000, "alice/head")
    elif name == "FaceTopology":
        m = FaceTopology(topology_id="default_older", vertex_count=4538,
                         triangles=rng.integers(0, 4538, size=9014 * 3).astype(np.uint32))
    else:
        raise KeyError(name)
    return m


def to_plain(msg):
    """Recursive plain-Python view of a message (lists for arrays), for readable equality failures."""
    if hasattr(msg, "get_fields_and_field_types"):
        return {f: to_plain(getattr(msg, f)) for f in msg.get_fields_and_field_types()}
    if isinstance(msg, (bytes, bytearray)):
        return list(msg)
    if isinstance(msg, np.ndarray) or hasattr(msg, "tolist"):
        return msg.tolist()
    if isinstance(msg, (list, tuple)):
        return [to_plain(x) for x in msg]
    return msg
