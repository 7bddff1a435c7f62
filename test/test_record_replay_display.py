"""Record, replay, Foxglove and the kiosk page on one running graph (separate processes over real DDS).

The shipped recorded conversation (test/data/conversation.mcap) is replayed with rsatalker-replay — its voices
only — into conversation, motion and renderer nodes started with ANOTHER relationship than the one recorded: the
images are re-rendered from the recording. While it plays, a WebSocket client subscribes to the Foxglove bridge and
decodes an image, and a real headless Chromium loads the kiosk page: both avatars on screen, the page's own
audio-video offset measured against its AudioContext's output clock.
"""

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from support.assets import graph_overrides
from support.chromium import Chromium, chromium_binary
from support.processes import child_env

pytestmark = [pytest.mark.ros, pytest.mark.slow]
BAG = Path(__file__).resolve().parent / "data" / "conversation.mcap"
SIZE = 128


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    import rclpy

    from rsatalker_ros.cli.bringup import Graph
    from rsatalker_ros.ros import graph
    from rsatalker_ros.ros.probe import GraphProbe
    tmp = tmp_path_factory.mktemp("replay")
    # recorded as blood / unequal (mother-son); re-rendered as friends
    overrides = graph_overrides(tmp, SIZE)
    overrides["renderer_bob"]["publish_compressed"] = True       # JPEG frames for Foxglove too
    # no audio_capture (the bag is the source); one process per participant, its motion node and renderer: two
    # start-ups fewer than the separate layout, which test_graph_conversation runs
    specs = [s for s in graph.describe(source="wav", kinship="non_blood", hierarchy="equal", senior="",
                                       label="friends", processes="per_participant", overrides=overrides)
             if s.executable != "audio_capture"]
    ports = {"kiosk": free_port(), "foxglove": free_port()}
    env = child_env()
    logs = tmp / "logs"
    logs.mkdir()
    rclpy.init()
    probe = GraphProbe(["alice", "bob"], extra=("motion",))
    g = Graph(specs, log_dir=str(logs), env=env)
    g.start()
    procs = []

    def start(name, argv):
        procs.append(subprocess.Popen([sys.executable, *argv], env=env, stdout=open(logs / f"{name}.log", "w"),
                                      stderr=subprocess.STDOUT, start_new_session=True))

    start("kiosk", ["-m", "rsatalker_ros.nodes.kiosk", "--ros-args", "-p", f"port:={ports['kiosk']}",
                    "-p", "playout_delay_ms:=400.0"])
    start("foxglove", ["-m", "rsatalker_ros.nodes.foxglove_bridge", "--ros-args", "-p", f"port:={ports['foxglove']}"])
    try:
        assert probe.spin_for(150, lambda: probe.graph_ready() and {"kiosk", "foxglove_bridge"} <=
                              probe.diagnostics_from), f"nodes did not come up; logs in {logs}"
        # each voice goes to both motion nodes, the conversation node and the kiosk: start once all four listen
        start("replay", ["-m", "rsatalker_ros.cli.replay", str(BAG), "--topics", "/rsatalker/*/audio", "--loop",
                         "--wait-for-subscribers", "4", "--quiet"])
        assert probe.spin_for(120, lambda: min(probe.count(f"/rsatalker/{p}/image_raw") for p in ("alice", "bob"))
                              >= 30), (probe.summary(), f"logs in {logs}")
        yield probe, ports, tmp
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        g.stop()
        probe.destroy_node()
        rclpy.try_shutdown()


def test_replayed_voices_are_rerendered_with_another_relationship(running):
    from rsatalker_ros.bag.reader import BagReader
    probe, _, _ = running
    recorded = {t.name for t in BagReader(str(BAG)).topics()}
    assert "/rsatalker/alice/audio" in recorded and "/rsatalker/alice/motion" in recorded
    for pid in ("alice", "bob"):
        motion = probe.messages(f"/rsatalker/{pid}/motion")
        # the recording was mother-son (blood, unequal); these frames come from the replayed voices, as friends
        assert motion[-1].relation.label == "friends" and motion[-1].relation.kinship == 1
        images = probe.messages(f"/rsatalker/{pid}/image_raw")
        assert (images[-1].width, images[-1].height, images[-1].encoding) == (SIZE, SIZE, "rgb8")
        frames = np.stack([np.frombuffer(bytes(m.data), np.uint8).reshape(SIZE, SIZE, 3) for m in images[-30:]])
        centre = frames[:, SIZE // 4: 3 * SIZE // 4, SIZE // 4: 3 * SIZE // 4].astype(np.float32)
        # a face fills the centre (the background is white) ...
        assert centre.mean() < 230, f"{pid}: the centre of the image is blank"
        stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in images]
        # ... on the 40 ms frame grid of the replayed (re-stamped, live) audio clock
        assert np.all(np.diff(stamps) > 0)
        assert probe.get_clock().now().nanoseconds - stamps[-1] < 30 * 10**9
    # the speaker's face moves over the replayed turn: consecutive frames differ
    alice = np.stack([np.frombuffer(bytes(m.data), np.uint8).reshape(SIZE, SIZE, 3)
                      for m in probe.messages("/rsatalker/alice/image_raw")]).astype(np.float32)
    changes = np.abs(np.diff(alice[:, SIZE // 4: 3 * SIZE // 4, SIZE // 4: 3 * SIZE // 4], axis=0)).mean(axis=(1, 2, 3))
    assert (changes > 0.05).mean() > 0.5, changes


def test_foxglove_client_subscribes_and_decodes_an_image(running):
    from mcap_ros2._dynamic import generate_dynamic
    from websockets.sync.client import connect
    _, ports, _ = running
    with connect(f"ws://127.0.0.1:{ports['foxglove']}", subprotocols=["foxglove.sdk.v1"], max_size=1 << 24) as ws:
        assert ws.subprotocol == "foxglove.sdk.v1"
        channels = {}
        while not {"/rsatalker/alice/image_raw", "/rsatalker/bob/image_raw/compressed"} <= set(channels):
            m = ws.recv(timeout=30)
            if isinstance(m, str) and json.loads(m)["op"] == "advertise":
                channels.update({c["topic"]: c for c in json.loads(m)["channels"]})
        for topic in ("/rsatalker/bob/camera_info", "/rsatalker/conversation", "/diagnostics",
                      "/rsatalker/bob/image_raw/compressed"):
            assert topic in channels, sorted(channels)
        ch = channels["/rsatalker/alice/image_raw"]
        assert (ch["encoding"], ch["schemaName"], ch["schemaEncoding"]) == ("cdr", "sensor_msgs/msg/Image", "ros2msg")
        assert "MSG: std_msgs/Header" in ch["schema"] and "std_msgs/msg/Header" not in ch["schema"].split("MSG:", 1)[1]
        jpeg_ch = channels["/rsatalker/bob/image_raw/compressed"]
        assert jpeg_ch["schemaName"] == "sensor_msgs/msg/CompressedImage"
        ws.send(json.dumps({"op": "subscribe", "subscriptions": [{"id": 1, "channelId": ch["id"]},
                                                                 {"id": 2, "channelId": jpeg_ch["id"]}]}))
        got = {}
        while len(got) < 2:
            m = ws.recv(timeout=30)
            if isinstance(m, bytes) and m[0] == 0x01:    # message data: opcode, subscription id, log time, CDR
                got[int.from_bytes(m[1:5], "little")] = m[13:]
    img = generate_dynamic("sensor_msgs/msg/Image", ch["schema"])["sensor_msgs/msg/Image"](got[1])
    assert (img.width, img.height, img.encoding) == (SIZE, SIZE, "rgb8")
    rgb = np.frombuffer(img.data, np.uint8).reshape(SIZE, SIZE, 3)
    assert rgb[SIZE // 4: 3 * SIZE // 4, SIZE // 4: 3 * SIZE // 4].mean() < 230   # a face, not a blank image
    jpeg = generate_dynamic("sensor_msgs/msg/CompressedImage", jpeg_ch["schema"])[
        "sensor_msgs/msg/CompressedImage"](got[2])
    from PIL import Image
    face = np.asarray(Image.open(io.BytesIO(bytes(jpeg.data))).convert("RGB"))
    assert face.shape == (SIZE, SIZE, 3) and face[SIZE // 4: 3 * SIZE // 4, SIZE // 4: 3 * SIZE // 4].mean() < 230


@pytest.mark.skipif(chromium_binary() is None, reason="chromium is not installed (scripts/bootstrap.sh installs it)")
def test_kiosk_page_in_chromium_shows_both_avatars_with_the_sound_in_sync(running):
    from PIL import Image
    probe, ports, tmp = running
    browser = Chromium(width=960, height=600)
    try:
        browser.goto(f"http://127.0.0.1:{ports['kiosk']}/")
        # offsets count from the last change of the playout delay (the page raises it past late frames)
        stats = browser.wait_for("window.kioskStats && kioskStats.offsets_measured >= 100 && "
                                 "kioskStats.frame_rate_hz.every(f => f > 0) && kioskStats", timeout=90)
        assert stats, browser.evaluate("JSON.stringify(window.kioskStats)")
        boxes = browser.evaluate("[...document.querySelectorAll('canvas')].map(c => { const r = "
                                 "c.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })")
        relation = browser.evaluate("document.getElementById('relation').textContent")
        shot = tmp / "kiosk.png"
        browser.screenshot(str(shot))
        if os.environ.get("RSATALKER_KIOSK_SCREENSHOT"):
            browser.screenshot(os.environ["RSATALKER_KIOSK_SCREENSHOT"])
    finally:
        browser.close()
    print("kiosk page:", json.dumps(stats))
    assert stats["audio_state"] == "running" and stats["audio_chunks"] > 100
    # the voices play whole: chunks arrive before their time on the AudioContext
    assert stats["audio_late"] <= 0.05 * stats["audio_chunks"], stats
    # the page's measured audio-video offset: when a frame appeared minus when its sound was heard
    assert abs(stats["offset_ms_p50"]) <= 40.0, stats
    # the page shows the frames the graph delivers, at its rate (25 Hz on an idle machine): of the graph's images
    # stamped within the stretch of the last frames the page showed, it showed nearly every one
    for pid, shown in zip(("alice", "bob"), stats["shown_stamps_ms"]):
        graph_ms = np.array(probe.logs[f"/rsatalker/{pid}/image_raw"].stamp_ns, np.int64) / 1e6
        delivered = graph_ms[(graph_ms >= min(shown) - 0.5) & (graph_ms <= max(shown) + 0.5)]
        assert len(shown) >= 0.9 * len(delivered), (pid, len(shown), len(delivered), stats)
    assert "friends" in relation and "non_blood" in relation
    img = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")).astype(np.float32)
    assert len(boxes) == 2
    for x, y, w, h in boxes:
        face = img[int(y + h / 4): int(y + 3 * h / 4), int(x + w / 4): int(x + 3 * w / 4)]
        assert face.mean() < 230 and face.std() > 10, "an avatar is missing from the screenshot"
