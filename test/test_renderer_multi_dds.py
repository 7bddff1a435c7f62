"""One renderer process serving two participants over DDS: fed FaceMesh on /rsatalker/alice/mesh and
/rsatalker/bob/mesh by a tester process, it publishes each one's images on that participant's own image topic,
stamped with that participant's own mesh stamps and framed in its own optical frame, and reports diagnostics per
participant."""

import signal
import sys
import time

import pytest

from support.assets import avatar_path, neutral_vertices
from support.processes import node_process

pytestmark = pytest.mark.ros


HEADS = {"alice": "default_older", "bob": "default_younger"}


def test_one_renderer_process_serves_two_participants(tmp_path):
    import rclpy
    avatars = [avatar_path(h, tmp_path) for h in HEADS.values()]
    cmd = [sys.executable, "-m", "rsatalker_ros.nodes.renderer", "--ros-args", "-r", "__node:=renderer_pair",
           "-p", "participants:=[alice, bob]", "-p", "heads:=[default_older, default_younger]",
           "-p", f"avatars:=[{', '.join(avatars)}]", "-p", "width:=64", "-p", "height:=48", "-p", "backend:=cpu",
           "-p", "max_frame_age_ms:=60000.0", "-p", "diagnostics_period_s:=0.5"]
    with node_process(cmd) as (proc, lines):
        rclpy.init()
        try:
            exercise(proc, lines)
        finally:
            rclpy.try_shutdown()
    assert "Traceback" not in "".join(lines), "".join(lines)[-3000:]


def exercise(proc, lines):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    from rsatalker_ros.msg import FaceMesh
    from rsatalker_ros.ros import qos
    from rsatalker_ros.ros.convert import image_from_msg, mesh_to_msg
    heads = HEADS
    node = rclpy.create_node("multi_render_tester")
    images = {pid: [] for pid in heads}
    diags = []
    pubs = {}
    for pid in heads:
        node.create_subscription(Image, f"/rsatalker/{pid}/image_raw", images[pid].append, qos.FRAMES)
        pubs[pid] = node.create_publisher(FaceMesh, f"/rsatalker/{pid}/mesh", qos.FRAMES)
    node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    meshes = {pid: neutral_vertices(h)[0] for pid, h in heads.items()}
    # each participant's stamps are told apart by their last digits: alice ...007, bob ...013
    offset = {"alice": 7, "bob": 13}
    sent = {pid: set() for pid in heads}

    def per_participant_diagnostics():
        names = {s.name for a in diags for s in a.status}
        return {"renderer_pair: alice", "renderer_pair: bob"} <= names

    try:
        end = time.monotonic() + 90         # loading, warm-up and discovery take a while on a busy machine
        k = 0
        while time.monotonic() < end and proc.poll() is None and not (
                all(len(v) >= 3 for v in images.values()) and per_participant_diagnostics()):
            k += 1
            for pid in heads:
                # on the node's clock (stamps far from it are refused), whole milliseconds + the participant's digits
                stamp = time.time_ns() // 1_000_000 * 1_000_000 + offset[pid]
                sent[pid].add(stamp)
                pubs[pid].publish(mesh_to_msg(meshes[pid], pid, heads[pid], stamp, f"{pid}/head"))
            t = time.monotonic() + 0.1
            while time.monotonic() < t:
                rclpy.spin_once(node, timeout_sec=0.02)
        out = "".join(lines)
        assert all(len(v) >= 3 for v in images.values()), ({p: len(v) for p, v in images.items()}, out[-3000:])
        for pid, got in images.items():
            for img in got:
                stamp = img.header.stamp.sec * 10**9 + img.header.stamp.nanosec
                assert stamp in sent[pid], (pid, stamp)          # its own mesh's stamp, never the other's
                assert img.header.frame_id == f"{pid}/camera_optical_frame"
                assert (img.width, img.height, img.encoding) == (64, 48, "rgb8")
        a, b = image_from_msg(images["alice"][-1]), image_from_msg(images["bob"][-1])
        assert a.std() > 5 and b.std() > 5 and (a != b).any(), "two different avatars, each visible"
        assert per_participant_diagnostics(), sorted({s.name for a in diags for s in a.status})
        last = {s.name: s for a in diags for s in a.status}
        for pid in heads:
            values = {kv.key: kv.value for kv in last[f"renderer_pair: {pid}"].values}
            assert last[f"renderer_pair: {pid}"].hardware_id == pid and "images_per_s" in values
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0, "".join(lines)[-3000:]      # (bounded only to fail a hang)
    finally:
        node.destroy_node()
