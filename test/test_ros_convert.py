"""Message <-> numpy conversions keep values and reject malformed input with errors that say what was expected."""

import numpy as np
import pytest

pytestmark = pytest.mark.ros


def test_audio_round_trip_s16_and_f32():
    from rsatalker_ros.msg import AudioFrame
    from rsatalker_ros.ros.convert import audio_from_msg, audio_to_msg, stamp_to_ns
    x = np.sin(np.linspace(0, 40, 640)).astype(np.float32) * 0.5
    m = audio_to_msg(x, 16000, "alice", 1_234_567_890_123)
    assert stamp_to_ns(m.header.stamp) == 1_234_567_890_123
    assert len(m.data) == 640 * 2
    np.testing.assert_allclose(audio_from_msg(m)[:, 0], x, atol=1 / 32768)
    m = audio_to_msg(np.stack([x, -x], 1), 48000, "bob", 5, sample_format=AudioFrame.FORMAT_F32LE)
    y = audio_from_msg(m)
    assert y.shape == (640, 2) and m.sample_rate == 48000
    np.testing.assert_array_equal(y[:, 1], -x)


@pytest.mark.parametrize("mutate, message", [
    (lambda m: setattr(m, "data", b""), "data is empty"),
    (lambda m: setattr(m, "data", bytes(m.data)[:-1]), "not a multiple of 2"),
    (lambda m: setattr(m, "sample_format", 7), "sample_format is 7"),
    (lambda m: setattr(m, "sample_rate", 0), "sample_rate is 0"),
    (lambda m: setattr(m, "channels", 0), "channels is 0"),
])
def test_malformed_audio_is_rejected_with_a_clear_error(mutate, message):
    from rsatalker_ros.ros.convert import audio_from_msg, audio_to_msg
    m = audio_to_msg(np.zeros(320, np.float32), 16000, "alice", 0)
    mutate(m)
    with pytest.raises(ValueError, match=message):
        audio_from_msg(m)


def test_nan_and_oversized_audio_are_rejected():
    from rsatalker_ros.msg import AudioFrame
    from rsatalker_ros.ros.convert import audio_from_msg, audio_to_msg
    x = np.zeros(320, np.float32)
    x[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        audio_from_msg(audio_to_msg(x, 16000, "a", 0, sample_format=AudioFrame.FORMAT_F32LE))
    with pytest.raises(ValueError, match="at most 1600"):
        audio_from_msg(audio_to_msg(np.zeros(3200, np.float32), 16000, "a", 0), max_samples=1600)


def test_motion_and_relation_round_trip():
    from rsatalker_ros.motion.layout import ARKIT_LAYOUT
    from rsatalker_ros.ros.convert import (flame_params_to_motion, motion_to_flame_params, relation_from_msg,
                                           relation_to_msg)
    from rsatalker_ros.social.relation import Relation
    m = np.random.default_rng(0).normal(size=ARKIT_LAYOUT.dim).astype(np.float32)
    msg = motion_to_flame_params(m, ARKIT_LAYOUT)
    assert msg.expression_basis == "arkit52" and len(msg.expression) == 52
    back, layout = flame_params_to_motion(msg)
    np.testing.assert_array_equal(back, m)
    assert layout == ARKIT_LAYOUT
    rel = Relation.parse("non_blood", "unequal", senior="boss", label="boss-employee", confidence=0.5)
    assert relation_from_msg(relation_to_msg(rel)) == rel
    msg.expression = msg.expression[:50]
    with pytest.raises(ValueError, match="expected 52 for basis 'arkit52'"):
        flame_params_to_motion(msg)
    bad = relation_to_msg(rel)
    bad.kinship = 9
    with pytest.raises(ValueError, match="kinship is 9"):
        relation_from_msg(bad)


def test_mesh_and_topology_round_trip():
    from rsatalker_ros.ros.convert import mesh_from_msg, mesh_to_msg, topology_from_msg, topology_to_msg
    v = np.random.default_rng(1).normal(size=(10, 3)).astype(np.float32)
    f = np.array([[0, 1, 2], [2, 3, 9]])
    np.testing.assert_array_equal(mesh_from_msg(mesh_to_msg(v, "a", "t", 0, "a/head"), 10), v)
    np.testing.assert_array_equal(topology_from_msg(topology_to_msg(f, 10, "t")), f)
    with pytest.raises(ValueError, match="expected 11"):
        mesh_from_msg(mesh_to_msg(v, "a", "t", 0, "a/head"), 11)
    with pytest.raises(ValueError, match="indices below 5"):
        topology_to_msg(f, 5, "t")


def test_mesh_marker_holds_every_triangle_corner_of_each_new_pose():
    """The TRIANGLE_LIST marker is kept between poses (one Point per vertex, shared by its triangle corners): each
    pose must still show exactly that pose's corners, after a serialisation round trip as rviz2 gets it."""
    from rclpy.serialization import deserialize_message, serialize_message
    from visualization_msgs.msg import Marker

    from rsatalker_ros.ros.convert import MeshMarker, stamp_to_ns
    rng = np.random.default_rng(2)
    f = np.array([[0, 1, 2], [2, 3, 9], [9, 3, 0]])
    marker = MeshMarker(f, 10, "a/head", "a")
    for stamp in (5, 7):
        v = rng.normal(size=(10, 3)).astype(np.float32)
        got = deserialize_message(serialize_message(marker.pose(v, stamp)), Marker)
        assert got.type == Marker.TRIANGLE_LIST and got.header.frame_id == "a/head"
        assert stamp_to_ns(got.header.stamp) == stamp
        np.testing.assert_array_equal([[p.x, p.y, p.z] for p in got.points], v[f].reshape(-1, 3))
    with pytest.raises(ValueError, match=r"\[10, 3\]"):
        marker.pose(np.zeros((9, 3)), 0)


def test_image_round_trip_and_a_reused_message_carries_only_the_new_frame():
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    from rsatalker_ros.ros.convert import image_from_msg, image_to_msg, stamp_to_ns
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(2))
    m = image_to_msg(a[:, ::-1], 7, "alice/camera_optical_frame")     # a strided view is copied in row order
    assert (m.height, m.width, m.step, m.encoding) == (24, 32, 96, "rgb8")
    np.testing.assert_array_equal(image_from_msg(deserialize_message(serialize_message(m), Image)), a[:, ::-1])
    again = image_to_msg(b, 9, "bob/camera_optical_frame", reuse=m)   # refilled in place: same size
    assert again is m and stamp_to_ns(m.header.stamp) == 9 and m.header.frame_id == "bob/camera_optical_frame"
    np.testing.assert_array_equal(image_from_msg(deserialize_message(serialize_message(m), Image)), b)
    small = image_to_msg(b[:5], 10, "bob/camera_optical_frame", reuse=m)   # another size: a new buffer
    assert (small.height, len(small.data)) == (5, 5 * 96)
    np.testing.assert_array_equal(image_from_msg(small), b[:5])
    with pytest.raises(ValueError, match="uint8"):
        image_to_msg(a.astype(np.float32), 1, "f")


def test_a_serialized_audio_frame_reads_as_the_message_and_truncated_bytes_are_refused():
    """The motion node takes its audio serialized (a raw subscription): audio_frame_from_cdr gives the fields the
    generated type gives, and a message cut short is a ValueError naming what ran out, not a crash or garbage."""
    from rclpy.serialization import serialize_message

    from rsatalker_ros.msg import AudioFrame
    from rsatalker_ros.ros.convert import audio_frame_from_cdr, audio_from_msg, audio_to_msg, mono_audio_from_msg
    from rsatalker_ros.stages.motion import MotionConfig
    from rsatalker_ros.stages import params
    cfg = params.build(MotionConfig, {})
    rng = np.random.default_rng(0)
    for frame_id, pid, n, fmt in (("", "alice", 320, AudioFrame.FORMAT_S16LE), ("mic", "bo", 7, AudioFrame.FORMAT_F32LE),
                                  ("é", "x" * 13, 1, AudioFrame.FORMAT_S16LE)):
        msg = audio_to_msg(rng.uniform(-0.5, 0.5, n), 16000, pid, 1_700_000_000_123_456_789, fmt, frame_id)
        raw = serialize_message(msg)
        got = audio_frame_from_cdr(raw)
        assert (got.header.stamp.sec, got.header.stamp.nanosec, got.header.frame_id, got.participant_id,
                got.sample_rate, got.channels, got.sample_format, bytes(got.data)) == \
            (msg.header.stamp.sec, msg.header.stamp.nanosec, frame_id, pid, 16000, 1, fmt, bytes(msg.data))
        x, why = mono_audio_from_msg(got, pid, cfg)
        y, _ = mono_audio_from_msg(msg, pid, cfg)
        assert why is None and np.array_equal(x, y) and np.array_equal(x, audio_from_msg(msg)[:, 0])
        for cut in (6, 20, len(raw) - 1):
            with pytest.raises(ValueError, match="AudioFrame"):
                audio_frame_from_cdr(raw[:cut])
    assert audio_frame_from_cdr(b"\x00\x00" + raw[2:]) is None        # big-endian CDR: left to rclpy's reader


def test_a_serialized_message_with_new_field_values_is_the_bytes_rclpy_serializes():
    """The motion node publishes its frame messages as bytes: one serialized message whose stamp, role, face
    parameters, turn index and vertices are overwritten per frame must read as the message holding those values,
    and be as long as what rclpy serializes from it, whatever the lengths of its strings (CDR alignment). (Not
    byte for byte: the rmw leaves the alignment padding uninitialised.)"""
    from geometry_msgs.msg import TransformStamped
    from rclpy.serialization import deserialize_message, serialize_message

    from rsatalker_ros.motion.layout import MotionLayout
    from rsatalker_ros.msg import FaceMesh, SocialMotion
    from rsatalker_ros.ros.convert import (SerializedMessage, face_mesh_fields, mesh_to_msg, motion_to_flame_params,
                                           ns_to_stamp, relation_to_msg, social_motion_fields, transform_fields)
    from rsatalker_ros.social.relation import Hierarchy, Kinship, Relation
    rng = np.random.default_rng(4)
    for basis, ids, senior, label in (("arkit52", ("a", "a/head"), "", ""), ("flame50", ("alice", "al/head"), "alice", "x"),
                                      ("flame100", ("bobby", "bobby/head"), "bobby", "boss-employee")):
        lay = MotionLayout.for_basis(basis)
        rel = Relation(Kinship.NON_BLOOD, Hierarchy.UNEQUAL if senior else Hierarchy.EQUAL, senior, label, 0.75)

        def motion_msg(m, stamp, role, turn):
            msg = SocialMotion(participant_id=ids[0], role=role, turn_index=turn, relation=relation_to_msg(rel))
            msg.header.frame_id = ids[1]
            ns_to_stamp(stamp, msg.header.stamp)
            motion_to_flame_params(m, lay, reuse=msg.params)
            return msg

        def pose_msg(stamp):
            t = TransformStamped(child_frame_id=ids[1])
            t.header.frame_id = "world"
            t.transform.translation.x, t.transform.rotation.w = 0.5, 1.0
            ns_to_stamp(stamp, t.header.stamp)
            return t

        verts = rng.normal(size=(7, 3)).astype(np.float32)
        first = (motion_msg(rng.normal(size=lay.dim).astype(np.float32), 5, 0, 1),
                 mesh_to_msg(verts, ids[0], basis, 5, ids[1]), pose_msg(5))
        kept = [SerializedMessage(first[0], *social_motion_fields(first[0])),
                SerializedMessage(first[1], *face_mesh_fields(first[1])),
                SerializedMessage(first[2], *transform_fields(first[2]))]
        assert all(k.ok for k in kept)
        for stamp in (1_700_000_000_123_456_789, 42):
            m = rng.normal(size=lay.dim).astype(np.float32)
            verts = rng.normal(size=(7, 3)).astype(np.float32)
            motion, mesh, pose = kept
            for k in kept:
                k.stamp(stamp)
            motion.field("role")[0] = 1
            motion.field("turn_index")[0] = 70000
            for name in ("expression", "jaw", "neck", "eyes"):
                motion.field({"jaw": "jaw_pose", "neck": "neck_pose", "eyes": "eye_pose"}.get(name, name))[:] = \
                    m[getattr(lay, name)]
            mesh.field("vertices")[:] = verts.reshape(-1)
            want = (motion_msg(m, stamp, 1, 70000), mesh_to_msg(verts, ids[0], basis, stamp, ids[1]), pose_msg(stamp))
            for got, msg in zip((motion.bytes(), mesh.bytes(), pose.bytes()), want):
                assert len(got) == len(serialize_message(msg))
                assert deserialize_message(got, type(msg)) == msg
    # a layout that does not fit the bytes (the check reads back the values the message was serialized with)
    msg = mesh_to_msg(verts, "a", "t", 5, "f")
    fields, values = face_mesh_fields(msg)
    fields["vertices"] = (fields["vertices"][0] + 4, "<f4", 21)
    assert not SerializedMessage(msg, fields, values).ok
    assert not SerializedMessage(FaceMesh(), {"stamp": (0, "<u4", 2)}, {"stamp": (1, 0)}).ok
