"""One render stage serving several participants (no ROS): each frame goes to its own participant with its own
stamp and is the image of that participant's own mesh; participants naming one avatar file share it; a bad mesh of
one participant is counted against it while the others are still rendered; diagnostics per participant; motion
input skinned per participant."""

import queue

import numpy as np
import pytest

from rsatalker_ros.stages import health, params
from support.assets import avatar_path, neutral_vertices


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    from rsatalker_ros.stages.render import RenderConfig, RenderStage
    d = tmp_path_factory.mktemp("av")
    older, younger = avatar_path("default_older", d), avatar_path("default_younger", d)
    cfg = params.build(RenderConfig, {"participants": ["alice", "bob", "carol"],
                                      "heads": ["default_older", "default_younger", "default_older"],
                                      "avatars": [older, younger, older], "width": 48, "height": 40,
                                      "backend": "cpu", "max_frame_age_ms": 60000.0, "too_old_ms": 60000.0})
    rejected = []
    st = RenderStage(cfg, lambda cause, err: rejected.append((cause, str(err))), lambda: 10**10, log=lambda s: None)
    st.rejected = rejected
    return st


def reference(stage, pid, vertices, camera):
    from rsatalker_ros.avatar.gaussians import FastBinder
    from rsatalker_ros.render.api import render_uint8
    return render_uint8(FastBinder(stage.streams[pid].avatar)(vertices), camera, stage.cfg.background, backend="cpu")


def test_each_frame_goes_to_its_own_participant_with_its_own_stamp(stage):
    a, _ = neutral_vertices("default_older")
    b, _ = neutral_vertices("default_younger")
    c = a * np.array([1.3, 1.0, 1.0], np.float32)            # carol: alice's avatar, a wider face
    assert stage.streams["alice"].avatar is stage.streams["carol"].avatar   # one file, loaded once
    assert stage.streams["bob"].avatar is not stage.streams["alice"].avatar
    got = queue.Queue()
    stamps = {"alice": 1_000_000_007, "bob": 2_000_000_011, "carol": 3_000_000_013}
    for pid, v in (("alice", a), ("bob", b), ("carol", c)):
        stage.put_mesh(v, stamps[pid], pid)
    # the images are views of a buffer the next tick may reuse: the emitter copies, as the node's publish does
    stage.start(lambda f: got.put((f.participant, f.stamp_ns, f.views[""][0].copy(), f.views[""][1])))
    try:
        frames = {}
        for _ in range(3):
            pid, stamp, img, cam = got.get(timeout=60)
            frames[pid] = (stamp, img, cam)
    finally:
        stage.stop()
    assert sorted(frames) == ["alice", "bob", "carol"]
    for pid, v in (("alice", a), ("bob", b), ("carol", c)):
        stamp, img, cam = frames[pid]
        assert stamp == stamps[pid]
        # framed from this participant's own first mesh, and the image of its own mesh
        aim = stage._aim((v.min(0) + v.max(0)) / 2.0)[""]
        np.testing.assert_allclose(cam.world_to_cam, aim.world_to_cam, atol=1e-6)
        np.testing.assert_array_equal(img, reference(stage, pid, v, cam))
        assert img.std() > 5, f"{pid}'s avatar should be visible"
    assert not np.array_equal(frames["alice"][1], frames["carol"][1])
    assert not np.array_equal(frames["alice"][1], frames["bob"][1])
    with pytest.raises(ValueError, match="'dave' is not served here.*alice"):
        stage.put_mesh(a, 5, "dave")


def test_a_bad_mesh_of_one_participant_does_not_stop_the_others(stage):
    a, _ = neutral_vertices("default_older")
    b, _ = neutral_vertices("default_younger")
    bad = b.copy()
    bad[7] = np.nan
    stage.report(health.Status(""), now_s=0.0)                # the diagnostics window starts
    stage.rejected.clear()
    got = queue.Queue()
    stage.put_mesh(a, 4 * 10**9, "alice")                     # both waiting: taken in the same tick
    stage.put_mesh(bad, 4 * 10**9 + 1, "bob")
    stage.start(lambda f: got.put((f.participant, f.stamp_ns, f.views[""][0].copy())))
    try:
        pid, stamp, img = got.get(timeout=60)
        assert (pid, stamp) == ("alice", 4 * 10**9) and img.std() > 5
        stage.put_mesh(b, 4 * 10**9 + 2, "bob")                # and bob's next good mesh renders
        pid, stamp, _ = got.get(timeout=60)
        assert (pid, stamp) == ("bob", 4 * 10**9 + 2)
    finally:
        stage.stop()
    assert got.empty()
    assert stage.rejected == [("frame (render failed)", "bob: vertices contain NaN or infinite values")]
    node = health.Status("")
    each = {s.name: s for s in stage.report(node, now_s=1.0)}
    assert sorted(each) == ["alice", "bob", "carol"] and each["bob"].hardware_id == "bob"
    assert each["bob"].values["dropped_render_failed"] == 1 and each["alice"].values["dropped_render_failed"] == 0
    assert each["bob"].level >= health.WARN and "1 render_failed" in each["bob"].message
    assert "render_failed" not in each["alice"].message
    assert node.level >= health.WARN and "bob: " in node.message and node.values["participants"] == "alice,bob,carol"
    assert len(each["alice"].values["stamp_to_publish_ms_each"].split(",")) == 1


def test_list_parameters_are_checked():
    from rsatalker_ros.stages.render import RenderConfig
    with pytest.raises(ValueError, match="heads has 1 entries.*one per participant"):
        params.build(RenderConfig, {"participants": ["alice", "bob"], "heads": ["default_older"]})
    with pytest.raises(ValueError, match="distinct"):
        params.build(RenderConfig, {"participants": ["alice", "alice"]})
    with pytest.raises(ValueError, match="go with participants"):
        params.build(RenderConfig, {"avatars": ["default_older"]})
    one = params.build(RenderConfig, {"participant": "bob", "head": "default_younger"}).served()
    assert [(s.participant, s.head, s.avatar) for s in one] == [("bob", "default_younger", "")]


def test_motion_input_skins_each_participant_with_its_own_head(tmp_path):
    """input: motion: heads named twice are loaded once; a motion of the wrong length for one participant is
    counted against it, while the other's motion is skinned and rendered."""
    import torch

    from rsatalker_ros.stages.render import RenderConfig, RenderStage
    cfg = params.build(RenderConfig, {"participants": ["alice", "bob"], "heads": ["default_older"] * 2,
                                      "avatars": [avatar_path("default_older", tmp_path)] * 2, "input": "motion",
                                      "width": 32, "height": 32, "backend": "cpu"})
    stage = RenderStage(cfg, lambda cause, err: None, lambda: 10**10, log=lambda s: None)
    head = stage.streams["alice"].head
    assert head is stage.streams["bob"].head and stage.streams["alice"].avatar is stage.streams["bob"].avatar
    with pytest.raises(ValueError, match="does not take meshes"):
        stage.put_mesh(np.zeros((stage.n_vertices, 3), np.float32), 1, "bob")
    motion = np.zeros(head.layout.dim, np.float32)
    frames, failed = stage.render_tick({"alice": (motion, 5), "bob": (motion[:-1], 6)})
    assert [(f.participant, f.stamp_ns) for f in frames] == [("alice", 5)] and list(failed) == ["bob"]
    assert "motion must be" in failed["bob"]
    v = head.from_motion(torch.from_numpy(motion[None]))[0].numpy()
    np.testing.assert_array_equal(frames[0].views[""][0], reference(stage, "alice", v, frames[0].views[""][1]))
