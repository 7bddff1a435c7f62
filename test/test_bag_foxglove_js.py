"""The shipped bag's schemas and messages in Foxglove's own JavaScript libraries (the parser and CDR reader the
Foxglove app uses; scripts/bootstrap.sh installs them with npm): every schema parses and every message decodes to
the same values as in Python, and the trap rosbag2 avoids is real: dependency headers named ``std_msgs/msg/Header``
are rejected."""

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BAG = HERE / "data" / "conversation.mcap"
FOXGLOVE_JS = Path(os.environ.get("RSATALKER_FOXGLOVE_JS", Path(sys.prefix).parent / "foxglove_js"))
pytestmark = pytest.mark.skipif(shutil.which("node") is None or not (FOXGLOVE_JS / "node_modules").is_dir(),
                                reason=f"node or Foxglove's JS libraries missing ({FOXGLOVE_JS}); "
                                "run scripts/bootstrap.sh")


def decode_in_foxglove(entries: dict) -> dict:
    env = dict(os.environ, NODE_PATH=str(FOXGLOVE_JS / "node_modules"))
    r = subprocess.run(["node", str(HERE / "js" / "decode_ros2msg.js")], input=json.dumps(entries), env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_foxglove_parses_every_schema_and_decodes_every_topic():
    from rosbags.highlevel import AnyReader

    from rsatalker_ros.bag.reader import BagReader
    bag = BagReader(str(BAG))
    entries = {}
    for t, _, _, data in bag.messages():
        e = entries.setdefault(t.name, {"schema": t.definition, "msgs": []})
        if len(e["msgs"]) < 5:
            e["msgs"].append(base64.b64encode(data).decode())
    # the trap: the same definition with /msg/ in its dependency headers
    audio_def = entries["/rsatalker/alice/audio"]["schema"]
    entries["msg-in-headers"] = {"schema": audio_def.replace("MSG: std_msgs/Header", "MSG: std_msgs/msg/Header"),
                                 "msgs": entries["/rsatalker/alice/audio"]["msgs"]}
    got = decode_in_foxglove(entries)
    assert not got["msg-in-headers"]["ok"] and "std_msgs/Header" in got["msg-in-headers"]["error"]
    topics = [t for t in entries if t.startswith("/")]
    assert len(topics) == 9 and all(got[t]["ok"] for t in topics), {t: got[t].get("error") for t in topics}
    with AnyReader([BAG]) as reader:           # the same values as rosbags decodes
        first = {}
        for c, _, raw in reader.messages():
            first.setdefault(c.topic, reader.deserialize(raw, c.msgtype))
    fa, ra = got["/rsatalker/alice/audio"]["messages"][0], first["/rsatalker/alice/audio"]
    assert (fa["participant_id"], fa["sample_rate"], fa["data"]["bytes"]) == ("alice", 16000, len(ra.data))
    assert (fa["header"]["stamp"]["sec"], fa["header"]["stamp"]["nanosec"]) == (ra.header.stamp.sec,
                                                                                 ra.header.stamp.nanosec)
    fc, rc = got["/rsatalker/conversation"]["messages"][0], first["/rsatalker/conversation"]
    assert fc["relation"]["label"] == rc.relation.label == "mother-son"
    assert fc["participant_ids"] == list(rc.participant_ids)
    fm, rm = got["/rsatalker/bob/motion"]["messages"][0], first["/rsatalker/bob/motion"]
    assert fm["params"]["expression_basis"] == rm.params.expression_basis
    assert fm["params"]["jaw_pose"] == pytest.approx(list(rm.params.jaw_pose))


def test_foxglove_parses_the_bridge_schemas_of_images_markers_and_diagnostics():
    pytest.importorskip("rclpy")
    from rsatalker_ros.bag.msgdef import message_definition
    types = ["sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/CameraInfo",
             "visualization_msgs/msg/Marker", "diagnostic_msgs/msg/DiagnosticArray"]
    got = decode_in_foxglove({t: {"schema": message_definition(t), "msgs": []} for t in types})
    assert all(got[t]["ok"] for t in types), got
