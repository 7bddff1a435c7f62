"""The whole graph in separate processes over real DDS (rsatalker-bringup's Graph), driven by the bundled demo
conversation: the speaker's jaw opens and the listener's does not, images arrive with the right size, encoding and
audio-clock stamps, the relationship from the command line reaches every node, and killing and restarting a motion
node mid-conversation, its renderer resumes."""


import numpy as np
import pytest

from support.assets import avatar_path, motion_checkpoint
from support.processes import child_env

pytestmark = [pytest.mark.ros, pytest.mark.slow]
SIZE = 96
JAW_OPEN = 17   # rsatalker_ros.face.arkit.ARKIT52_INDEX["jawOpen"]


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    import rclpy

    from rsatalker_ros.cli.bringup import Graph
    from rsatalker_ros.ros import graph
    from rsatalker_ros.ros.probe import GraphProbe
    tmp = tmp_path_factory.mktemp("graph")
    # loop: on a busy machine the 29 s recording may end before the last test restarts a node
    specs = graph.describe(source="wav", loop=True, kinship="blood", hierarchy="unequal", senior="alice",
                           label="mother-son", overrides={"motion": {"checkpoint": motion_checkpoint(tmp), "marker_rate_hz": 0.0},
                                      "renderer": {"width": SIZE, "height": SIZE, "render_threads": 1},
                                      "renderer_alice": {"avatar": avatar_path("default_older", tmp)},
                                      "renderer_bob": {"avatar": avatar_path("default_younger", tmp)}})
    rclpy.init()
    probe = GraphProbe(["alice", "bob"])
    g = Graph(specs, log_dir=str(tmp / "logs"), env=child_env(), warm_spare=True)   # as rsatalker-bringup
    g.start(skip=[g.audio_group()])
    # the warm spare the renderer's respawn starts in (rsatalker-bringup starts it 30 s after the graph): started
    # with the nodes and ready before the conversation plays, so that its warm-up neither competes with the
    # recorded turn nor keeps the whole graph running only to wait for it; ready before the respawn test, so that
    # the test times what rsatalker-bringup does
    spare = g.start_spare()
    try:
        assert probe.spin_for(120, probe.graph_ready), f"nodes did not come up; logs in {tmp / 'logs'}"
        assert probe.spin_for(300, spare.ready), "the warm spare did not get ready"
        g.start_group(g.audio_group(), warm=False)          # a new process: the spare stays for the respawn
        # the first turn (alice, 0.4-4.2 s) and the start of bob's answer
        assert probe.spin_for(60, lambda: probe.count("/rsatalker/bob/motion") >= 150), probe.summary()
        # renderers compile their numba kernels on the first frame (slow on a busy machine when not cached)
        assert probe.spin_for(120, lambda: min(probe.count(f"/rsatalker/{p}/image_raw") for p in ("alice", "bob"))
                              >= 10), probe.summary()
        yield g, probe, tmp
    finally:
        g.stop()
        probe.destroy_node()
        rclpy.try_shutdown()


def test_the_speakers_jaw_opens_and_the_listeners_does_not(running):
    from support.assets import ASSETS
    assert (ASSETS / "checkpoints" / "motion_default.safetensors").is_file(), \
        "the shipped motion checkpoint is missing: lips cannot follow speech with an untrained model"
    from rsatalker_ros.face.arkit import ARKIT52_INDEX
    assert ARKIT52_INDEX["jawOpen"] == JAW_OPEN
    g, probe, _ = running
    jaw = {}
    for pid in ("alice", "bob"):
        msgs = probe.messages(f"/rsatalker/{pid}/motion")
        t = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in msgs])
        # how far the mouth opens: the jawOpen weight of the default heads' ARKit basis (the jaw rotation adds to it)
        jaw[pid] = (t, np.array([m.params.expression[JAW_OPEN] for m in msgs]))
    t0 = min(jaw["alice"][0][0], jaw["bob"][0][0]) - 0.02    # the audio clock at the first sample
    turn = {p: v[(t > t0 + 0.8) & (t < t0 + 4.0)] for p, (t, v) in jaw.items()}
    assert turn["alice"].size > 50 and turn["bob"].size > 50
    # alice speaks in this window, bob listens: alice's jaw moves open, bob's stays nearly shut
    assert np.percentile(turn["alice"], 90) > 2.0 * max(np.percentile(turn["bob"], 90), 0.01), \
        (np.percentile(turn["alice"], 90), np.percentile(turn["bob"], 90))
    assert np.std(turn["alice"]) > 2.0 * np.std(turn["bob"])


def test_images_have_the_right_size_encoding_and_audio_clock_stamps(running):
    g, probe, _ = running
    for pid in ("alice", "bob"):
        img = probe.messages(f"/rsatalker/{pid}/image_raw")
        assert len(img) >= 10, f"{pid}: only {len(img)} images"
        last = img[-1]
        assert (last.width, last.height, last.encoding, last.step) == (SIZE, SIZE, "rgb8", 3 * SIZE)
        assert last.header.frame_id == f"{pid}/camera_optical_frame"
        img_stamps = np.array([m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in img], np.int64)

        def mesh_stamps():
            return [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in probe.messages(f"/rsatalker/{pid}/mesh")]
        # the probe's mesh subscription may be a few frames behind its image subscription (two topics, no order
        # between them): the mesh of the newest image has been published, so it arrives
        assert probe.spin_for(60, lambda: max(mesh_stamps()) >= img_stamps.max()), probe.summary()
        mesh = mesh_stamps()
        # every image carries the audio-clock stamp of the motion frame it shows: a 40 ms frame grid
        assert np.all((img_stamps - mesh[0]) % 40_000_000 == 0)
        assert mesh[0] <= img_stamps.min() and img_stamps.max() <= max(mesh)
        assert np.all(np.diff(img_stamps) > 0)
    states = probe.messages("/rsatalker/conversation")
    assert states[-1].relation.kinship == 0 and states[-1].relation.senior_participant_id == "alice"
    assert states[-1].relation.label == "mother-son"
    assert {s.active_speaker for s in states} >= {"alice", "bob"}
    motion = probe.messages("/rsatalker/bob/motion")
    assert motion[-1].relation.senior_participant_id == "alice"


def test_renderer_resumes_after_the_motion_node_is_killed_and_restarted(running):
    import signal
    import time
    g, probe, _ = running
    topic = "/rsatalker/alice/image_raw"
    g.stop_group("motion_alice", sig=signal.SIGKILL)         # (returns once the process is gone)
    killed_at = probe.get_clock().now().nanoseconds
    # no motion, no new images: the renderer may still publish images of meshes it had (a backlog on a busy
    # machine), but none of audio captured after the kill and none of a frame twice, however long it is watched
    probe.spin_for(2.5)
    stamps = np.array(probe.logs[topic].stamp_ns, np.int64)
    assert stamps.size > 0 and stamps.max() <= killed_at, (stamps.max() - killed_at) / 1e6
    assert np.all(np.diff(stamps) > 0)
    t_start = time.monotonic()
    g.start_group("motion_alice", warm=False)     # a new process: the warm spare stays for the renderer's respawn
    assert probe.spin_for(60, lambda: any(s > killed_at for s in probe.logs[topic].stamp_ns)), \
        "renderer_alice published no image of audio captured after the restart"
    print(f"\nmotion_alice: first new image {time.monotonic() - t_start:.1f} s after the restarted process started")
    assert all(g.alive().values()), g.alive()


def test_a_killed_renderer_is_respawned_by_the_graph_and_publishes_again(running):
    """Issue #11 failure 5: a dead child stopped the graph. Graph.supervise (rsatalker-bringup's loop) starts it
    again; the time from the kill to its first new image is printed (a figure, not an assertion)."""
    import signal
    import time
    g, probe, _ = running
    topic = "/rsatalker/alice/image_raw"
    lines, respawned_at = [], []

    def say(line):
        lines.append(line)
        if line.startswith("[renderer_alice] respawned"):
            respawned_at.append(time.monotonic())
    assert g.spare is not None and g.spare.ready(), "no warm spare for the respawn"    # (the fixture's, unused)
    killed_at = probe.get_clock().now().nanoseconds
    t_kill = time.monotonic()
    g.stop_group("renderer_alice", sig=signal.SIGKILL)
    assert probe.spin_for(120, lambda: g.supervise(say=say)
                          and any(s > killed_at for s in probe.logs[topic].stamp_ns)), (lines, probe.summary())
    t_image = time.monotonic()
    # the figure issue #11 asks for (target 3 s; printed, not asserted: it depends on the machine's load)
    print(f"\nrenderer_alice: first new image {t_image - respawned_at[0]:.1f} s after the respawned process "
          f"started ({t_image - t_kill:.1f} s after SIGKILL, the {g.respawn.delay_s:g} s respawn delay included)")
    assert any(line.startswith("[renderer_alice] died (signal SIGKILL); respawning") for line in lines), lines
    assert any(line.startswith("[renderer_alice] respawned") for line in lines), lines
    assert all(g.alive().values()), g.alive()
