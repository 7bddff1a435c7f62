"""MCAP bags as rosbag2 writes them, read back by two other decoders (rosbags, mcap-ros2-support), the reader's
limits on untrusted files, topic selection and replay timing. ROS-free except where marked."""

import struct
from pathlib import Path

import numpy as np
import pytest

from rsatalker_ros.bag.msgdef import SEPARATOR, dependencies, message_definition, normalized
from rsatalker_ros.bag.playback import Schedule
from rsatalker_ros.bag.reader import BagError, BagReader
from rsatalker_ros.bag.select import choose, graph_topics
from rsatalker_ros.bag.writer import BagWriter, qos_dict

BAG = Path(__file__).resolve().parent / "data" / "conversation.mcap"


needs_msg_files = pytest.mark.ros       # definitions come from the installed .msg files (AMENT_PREFIX_PATH)


@needs_msg_files
def test_definitions_name_dependencies_as_rosbag2_does():
    text = message_definition("rsatalker_ros/msg/ConversationState")
    headers = [line for line in text.splitlines() if line.startswith("MSG: ")]
    # each dependency once, named pkg/Type (Foxglove's parser rejects pkg/msg/Type here)
    assert headers == ["MSG: rsatalker_ros/SocialRelation", "MSG: std_msgs/Header", "MSG: builtin_interfaces/Time"]
    assert text.count(SEPARATOR) == 3
    assert text.startswith(Path(__file__).resolve().parents[1].joinpath("msg", "ConversationState.msg").read_text())
    assert dependencies("uint8 A=1\nstring<=8 s\nint32[] v\nHeader h  # c\nfoo/Bar[4] b\n", "pkg") == \
        ["foo/Bar", "std_msgs/Header"]
    with pytest.raises(ValueError, match="package/msg/Type"):
        message_definition("Image")


def test_shipped_bag_decodes_the_same_in_rosbags_and_mcap_ros2():
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    from rosbags.highlevel import AnyReader
    with AnyReader([BAG]) as reader:          # rosbags builds its types from the bag's own definitions
        rb = [(c.topic, t, reader.deserialize(raw, c.msgtype)) for c, t, raw in reader.messages()]
    with open(BAG, "rb") as f:
        mc = [(ch.topic, msg.log_time, m) for _, ch, msg, m in make_reader(f, decoder_factories=[DecoderFactory()])
              .iter_decoded_messages(log_time_order=False)]
    assert len(rb) == len(mc) > 1000
    by_topic = {}
    for (t1, l1, a), (t2, l2, b) in zip(sorted(rb, key=lambda x: (x[0], x[1])), sorted(mc, key=lambda x: (x[0], x[1]))):
        assert (t1, l1) == (t2, l2)
        by_topic.setdefault(t1, []).append((a, b))
    audio = by_topic["/rsatalker/alice/audio"]
    assert len(audio) > 200
    for a, b in audio:
        assert a.participant_id == b.participant_id == "alice" and a.sample_rate == b.sample_rate == 16000
        assert bytes(a.data) == bytes(b.data) and len(a.data) > 0
        assert (a.header.stamp.sec, a.header.stamp.nanosec) == (b.header.stamp.sec, b.header.stamp.nanosec)
    for a, b in by_topic["/rsatalker/conversation"]:
        assert a.relation.label == b.relation.label == "mother-son"
        assert list(a.speaking_probability) == pytest.approx(list(b.speaking_probability))
    for a, b in by_topic["/rsatalker/bob/motion"]:
        assert np.array_equal(np.asarray(a.params.expression), np.asarray(b.params.expression))
        assert a.params.expression_basis == "arkit52"
    # the voices of both speakers are in it: a conversation, not silence
    speech = np.concatenate([np.frombuffer(bytes(a.data), "<i2") for a, _ in audio]).astype(np.float32) / 32768
    assert np.abs(speech).max() > 0.1


@needs_msg_files
def test_written_bag_has_rosbag2_records_and_reads_back(tmp_path):
    from mcap.reader import make_reader
    path = tmp_path / "b.mcap"
    payloads = [bytes([0, 1, 0, 0]) + struct.pack("<I", 4) + b"hi%d\x00" % i for i in range(3)]   # std_msgs/String
    with BagWriter(str(path)) as bag:
        bag.add_topic("/chat", "std_msgs/msg/String", [qos_dict("best_effort", depth=5)], "RIHS01_" + "0" * 64)
        for i, p in enumerate(payloads):
            bag.write("/chat", p, 1_000 + i, 900 + i)
    with open(path, "rb") as f:
        r = make_reader(f)
        assert r.get_header().profile == "ros2"
        (meta,) = list(r.iter_metadata())
        summary = r.get_summary()
    assert meta.name == "rosbag2" and "topics_with_message_count" in meta.metadata["serialized_metadata"]
    (ch,) = summary.channels.values()
    assert ch.message_encoding == "cdr" and ch.metadata["topic_type_hash"].startswith("RIHS01_")
    assert "reliability: best_effort" in ch.metadata["offered_qos_profiles"]
    assert summary.schemas[ch.schema_id].encoding == "ros2msg"
    bag = BagReader(str(path))
    (t,) = bag.topics()
    assert (t.name, t.type_name, t.count, t.qos[0]["depth"]) == ("/chat", "std_msgs/msg/String", 3, 5)
    assert [(log, pub, d) for _, log, pub, d in bag.messages()] == [(1000 + i, 900 + i, p) for i, p in
                                                                    enumerate(payloads)]
    with BagWriter(str(tmp_path / "c.mcap")) as again:
        again.add_topic("/chat", "std_msgs/msg/String", [])
        with pytest.raises(ValueError, match="already"):
            again.add_topic("/chat", "std_msgs/msg/String", [])


def test_reader_refuses_bad_files_with_a_reason(tmp_path):
    garbage = tmp_path / "garbage.mcap"
    garbage.write_bytes(b"not an mcap file at all" * 10)
    with pytest.raises(BagError, match="not a readable MCAP"):
        BagReader(str(garbage)).topics()
    with pytest.raises(BagError, match="no such bag"):
        BagReader(str(tmp_path / "missing.mcap"))
    # a recording cut short (no summary) still reads, by scanning
    cut = tmp_path / "cut.mcap"
    data = BAG.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    try:
        n = sum(t.count for t in BagReader(str(cut)).topics())
        assert 0 < n < sum(t.count for t in BagReader(str(BAG)).topics())
    except BagError as err:              # or it stops with a reason where the cut falls inside a record
        assert "not a readable MCAP" in str(err)
    # a record longer than the limit, and a chunk that claims to decompress to more than the limit, are refused
    # before anything is allocated
    with pytest.raises(BagError, match="exceeds limit"):
        list(BagReader(str(BAG), max_record_bytes=10_000).messages())
    from mcap.reader import make_reader
    with open(BAG, "rb") as f:
        start = make_reader(f).get_summary().chunk_indexes[0].chunk_start_offset
    forged = bytearray(data)
    assert forged[start] == 0x06                      # Chunk: opcode, length, start, end, uncompressed size, ...
    forged[start + 25: start + 33] = struct.pack("<Q", 1 << 40)
    (tmp_path / "forged.mcap").write_bytes(bytes(forged))
    with pytest.raises(BagError, match="exceeds the limit"):
        list(BagReader(str(tmp_path / "forged.mcap")).messages())


def test_topic_selection_and_replay_schedule():
    topics = graph_topics(["alice", "bob"])
    assert "/rsatalker/bob/image_raw/compressed" in topics and "/diagnostics" in topics
    assert choose(topics, ["/rsatalker/*/audio"]) == ["/rsatalker/alice/audio", "/rsatalker/bob/audio"]
    assert choose(topics, ["/rsatalker/alice/*"], ["*image*", "*mesh*"]) == [
        "/rsatalker/alice/audio", "/rsatalker/alice/audio_info", "/rsatalker/alice/motion",
        "/rsatalker/alice/head_pose", "/rsatalker/alice/camera_info"]
    s = Schedule(bag_start_ns=1_000, bag_duration_ns=5_000, start_wall_ns=100_000, rate=2.0, loop_gap_ns=1_000)
    assert s.due_ns(1_000) == 100_000 and s.due_ns(3_000) == 101_000
    assert s.due_ns(1_000, loop=1) == 103_000
    assert s.stamp_shift_ns(0) == 99_000 and s.stamp_shift_ns(2) == 111_000
    with pytest.raises(ValueError, match="rate"):
        Schedule(0, 1, 0, rate=0.0)
    assert normalized("int32 a  # x\n\n# only\nMSG: p/T\nint8  b") == "int32 a\nMSG: p/T\nint8 b"
