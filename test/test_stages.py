"""The stages without ROS: every runtime parameter acts on a running stage, and the diagnostics they report go
WARN when they miss their targets (a starved renderer)."""

import dataclasses
import time

import numpy as np
import pytest

from rsatalker_ros.stages import health, params
from support.assets import avatar_path, motion_checkpoint, neutral_vertices


def wait_for(cond, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


# ---- conversation ------------------------------------------------------------------------------------------------
def speech_then_silence(seconds_speech=1.0, seconds_silence=1.0):
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds_speech * 16000)) / 16000
    speech = (0.02 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)    # ~23 dB above the noise: p ~ 0.97
    quiet = (0.001 * rng.standard_normal(int(seconds_silence * 16000))).astype(np.float32)
    return np.concatenate([quiet, speech, quiet])


def run_conversation(stage, x, t0_ns=10**12):
    states = []
    for k in range(0, x.size, 320):
        stamp = t0_ns + int(k * 1e9 / 16000)
        stage.push_audio("alice", x[k:k + 320], stamp, stamp / 1e9)
        stage.push_audio("bob", np.zeros(320, np.float32), stamp, stamp / 1e9)
        if k % 1600 == 0:
            states.append(stage.tracker.state(stamp / 1e9 + 0.02))
    return states


def test_conversation_runtime_parameters_act():
    from rsatalker_ros.stages.conversation import ConversationConfig, ConversationStage
    cfg = params.build(ConversationConfig, {"vad_backend": "energy"})
    stage = ConversationStage(cfg)
    x = speech_then_silence()
    assert any(s.active_speaker == "alice" for s in run_conversation(stage, x))
    # min_speech_s longer than the speech: nobody ever speaks
    stage = ConversationStage(cfg)
    stage.reconfigure(params.update(cfg, {"min_speech_s": 2.0}))
    assert not any(s.active_speaker for s in run_conversation(stage, x))
    # vad_threshold above every probability: nobody speaks either
    stage = ConversationStage(cfg)
    stage.reconfigure(params.update(cfg, {"vad_threshold": 0.99}))
    states = run_conversation(stage, x)
    assert max(max(s.probability.values()) for s in states) < 0.99 and not any(s.active_speaker for s in states)
    # hangover: a long one keeps alice speaking through the following second of silence
    stage = ConversationStage(cfg)
    stage.reconfigure(params.update(cfg, {"hangover_s": 3.0}))
    assert run_conversation(stage, x)[-1].active_speaker == "alice"
    stage = ConversationStage(cfg)
    assert run_conversation(stage, x)[-1].active_speaker == ""
    # the relationship, one parameter at a time; a senior who is not a participant is refused
    assert "incomplete" in stage.reconfigure(params.update(cfg, {"relation_hierarchy": "unequal"}))
    cfg2 = params.update(cfg, {"relation_hierarchy": "unequal", "relation_senior": "bob"})
    assert stage.reconfigure(cfg2) == "" and stage.relation.relation.senior == "bob"
    with pytest.raises(ValueError, match="carol"):
        stage.reconfigure(params.update(cfg2, {"relation_senior": "carol"}))
    # audio_timeout_s decides who counts as silent
    stage.latest_audio = {"alice": (0, 100.0), "bob": (0, 99.0)}
    assert stage.silent_streams(100.5) == ["bob"]                 # 1.5 s without bob's audio, timeout 1 s
    stage.reconfigure(params.update(cfg2, {"audio_timeout_s": 2.0}))
    assert stage.silent_streams(100.5) == [] and stage.silent_streams(101.5) == ["bob"]


def test_conversation_says_when_its_decision_changes_and_stamps_never_go_back():
    """push_audio is True exactly when speaker, turn or who speaks changed (the node publishes those at once and
    the rest at rate_hz); state stamps follow the audio clock and never go back, even when audio arrives late."""
    from rsatalker_ros.stages.conversation import ConversationConfig, ConversationStage
    stage = ConversationStage(params.build(ConversationConfig, {"vad_backend": "energy"}))
    x, t0 = speech_then_silence(), 10**12
    changes = []
    for k in range(0, x.size, 320):
        stamp = t0 + int(k * 1e9 / 16000)
        before = stage.tracker.decision()
        changed = stage.push_audio("alice", x[k:k + 320], stamp, stamp / 1e9)
        assert changed == (stage.tracker.decision() != before)
        changes += [(k / 16000, stage.tracker.decision()[0])] if changed else []
    assert [who for _, who in changes] == ["alice", ""]          # starts speaking in the speech, stops after it
    assert 1.0 < changes[0][0] < 1.3 and 2.0 < changes[1][0] < 2.6
    end_ns, arrived = stage.latest_audio["alice"]
    first = stage.state(arrived + 0.3, fallback_ns=0).stamp_ns          # 300 ms after the last audio arrived
    assert first == pytest.approx(end_ns + 300_000_000, abs=1000)
    stage.latest_audio["alice"] = (end_ns + 20_000_000, arrived + 0.3)  # the next 20 ms chunk, 300 ms late
    assert stage.state(arrived + 0.3, fallback_ns=0).stamp_ns == first  # not 280 ms back
    assert stage.state(arrived + 0.4, fallback_ns=0).stamp_ns == first   # until the audio clock passes it
    assert stage.state(arrived + 0.6, fallback_ns=0).stamp_ns == pytest.approx(end_ns + 320_000_000, abs=1000)


# ---- motion ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def motion_stage(tmp_path_factory):
    from rsatalker_ros.stages.motion import MotionConfig, MotionStage
    cfg = params.build(MotionConfig, {"checkpoint": motion_checkpoint(tmp_path_factory.mktemp("ckpt")),
                                      "relation_source": "parameters"})
    return MotionStage(cfg)


def test_motion_runtime_parameters_act(motion_stage):
    from rsatalker_ros.social.relation import Relation
    from rsatalker_ros.stages.frames import head_rotation
    stage = motion_stage
    cfg = stage.cfg
    audio = speech_then_silence(0.5, 0.25)

    def push(t0):
        out = []
        for k in range(0, audio.size, 640):
            frames, _ = stage.push_audio(0, audio[k:k + 640], t0 + k * 62_500)
            out += frames
            frames, _ = stage.push_audio(1, np.zeros(640, np.float32), t0 + k * 62_500)
            out += frames
        return out

    frames = push(10**12)
    assert frames and all(f.vertices is not None and f.vertices.shape == (5130, 3) for f in frames)
    stage.reconfigure(params.update(cfg, {"publish_mesh": False}))
    frames = push(10**12 + 100 * 10**9)
    assert frames and all(f.vertices is None for f in frames)
    stage.reconfigure(params.update(cfg, {"head_position": [1.0, 2.0, 3.0], "head_yaw_deg": 90.0}))
    pos, quat = stage.head_pose()
    assert pos == [1.0, 2.0, 3.0] and np.allclose(quat, head_rotation(90.0))
    stage.reconfigure(params.update(cfg, {"marker_rate_hz": 0.0}))
    assert not stage.marker_due(1000.0)
    stage.reconfigure(params.update(cfg, {"marker_rate_hz": 2.0}))
    assert stage.marker_due(1000.0) and not stage.marker_due(1000.4) and stage.marker_due(1000.6)
    # relation_source parameters: a conversation's relationship is ignored; conversation: followed
    blood = Relation.parse("blood", "unequal", "bob", "father-son")
    assert not stage.on_conversation(3, ["alice", "bob"], [0.9, 0.1], blood, 5.0)
    assert stage.relation.relation != blood and stage.turn_index == 3 and stage.speaking(5.1)
    stage.reconfigure(params.update(cfg, {"relation_source": "conversation"}))
    assert stage.on_conversation(4, ["alice", "bob"], [0.1, 0.9], blood, 6.0)
    assert stage.relation.relation == blood and stage.stream._dyad.relation == blood and not stage.speaking(6.1)
    with pytest.raises(ValueError, match="carol"):
        stage.on_conversation(5, ["alice", "bob"], [0.1, 0.9], Relation.parse("blood", "unequal", "carol"), 7.0)


def listener_motion(stage, t0_ns, seconds=1.2):
    """Alice listens (silent) while bob speaks (the demo's second turn), from audio-clock time t0_ns: her frames."""
    from support.ros_harness import demo_audio
    _, b, _ = demo_audio(4.6 + seconds)
    bob = b[int(4.6 * 16000):int((4.6 + seconds) * 16000)]
    frames = []
    for k in range(0, bob.size, 640):
        frames += stage.push_audio(1, bob[k:k + 640], t0_ns + k * 62_500)[0]
        frames += stage.push_audio(0, np.zeros(640, np.float32), t0_ns + k * 62_500)[0]
    return frames


def test_relationship_changes_the_listeners_motion_and_frames_sit_on_the_audio_clock(tmp_path):
    """The relationship parameters change the listener's motion (the same relationship reproduces it); a jump of
    the audio clock restarts the stream; frame k is stamped at the centre of its 40 ms of audio, shifted by
    frame_phase_ms."""
    from rsatalker_ros.stages.motion import MotionConfig, MotionStage
    base = {"checkpoint": motion_checkpoint(tmp_path), "relation_source": "parameters"}
    cfg = params.build(MotionConfig, base)
    stage = MotionStage(cfg)
    t0 = 2 * 10**12
    peer = listener_motion(stage, t0)
    stage.reconfigure(params.update(cfg, {"relation_kinship": "blood", "relation_hierarchy": "unequal",
                                          "relation_senior": "bob"}))
    junior = listener_motion(stage, t0 + 100 * 10**9)             # a clock jump: the stream restarts
    stage.reconfigure(cfg)
    again = listener_motion(stage, t0 + 200 * 10**9)
    n = min(len(peer), len(junior), len(again))
    assert n >= 25
    m = lambda frames: np.stack([f.motion for f in frames[:n]])  # noqa: E731
    np.testing.assert_allclose(m(peer), m(again), atol=1e-5)
    assert np.abs(m(peer) - m(junior)).mean() > 1e-3, "the relationship did not change the listener's motion"
    assert not stage.speaking(time.monotonic())                  # alice is silent: SocialMotion.ROLE_LISTENING
    stamps = np.array([f.stamp_ns for f in junior[:10]])
    np.testing.assert_array_equal(stamps - t0 - 100 * 10**9, 20_000_000 + 40_000_000 * np.arange(10))
    shifted = MotionStage(params.build(MotionConfig, dict(base, frame_phase_ms=20.0)))
    frames = listener_motion(shifted, t0, seconds=0.6)
    np.testing.assert_array_equal(np.array([f.stamp_ns for f in frames[:10]]) - t0, 40_000_000 * np.arange(10))
    assert np.isfinite(np.stack([f.motion for f in frames])).all()


# ---- render ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def render_stage(tmp_path_factory):
    from rsatalker_ros.stages.render import RenderConfig, RenderStage
    # latency targets out of reach of a loaded machine's wall clock: these tests are about parameters and the rate
    cfg = params.build(RenderConfig, {"avatar": avatar_path("default_older", tmp_path_factory.mktemp("av")),
                                      "width": 64, "height": 48, "backend": "cpu", "target_rate_hz": 25.0,
                                      "latency_budget_ms": 60000.0, "target_latency_ms": 60000.0})
    rejected = []
    stage = RenderStage(cfg, lambda cause, err: rejected.append((cause, err)), time.monotonic_ns, log=lambda s: None)
    stage.rejected = rejected
    return stage


def test_render_runtime_parameters_act(render_stage):
    stage = render_stage
    cfg = stage.cfg
    v, _ = neutral_vertices("default_older")
    white = stage.render(v, 0).views[""][0]
    assert tuple(white[0, 0]) == (255, 255, 255)
    stage.reconfigure(params.update(cfg, {"background": [0.0, 0.0, 1.0]}), {"background"})
    blue = stage.render(v, 0).views[""][0]
    assert tuple(blue[0, 0]) == (0, 0, 255)
    narrow = params.update(stage.cfg, {"fov_y_deg": 10.0})
    stage.reconfigure(narrow, {"fov_y_deg"})
    zoomed = stage.render(v, 0).views[""][0]
    assert (zoomed != blue).any(axis=2).mean() > 2 * (blue != blue[0, 0]).any(axis=2).mean()   # fills more
    stage.reconfigure(params.update(narrow, {"camera_distance_m": 3.0}), {"camera_distance_m"})
    far = stage.render(v, 0).views[""][0]
    assert (far != far[0, 0]).any(axis=2).mean() < (zoomed != zoomed[0, 0]).any(axis=2).mean()    # smaller
    moved = params.update(narrow, {"camera_distance_m": 3.0, "camera_target_offset": [0.05, 0.0, 0.0]})
    stage.reconfigure(moved, {"camera_target_offset"})
    shifted = stage.render(v, 0).views[""][0]
    cols = lambda img: np.nonzero((img != img[0, 0]).any(axis=2).any(axis=0))[0].mean()  # noqa: E731
    assert cols(shifted) < cols(far) - 1            # looking further to the head's left moves the face right->left
    stage.reconfigure(params.update(narrow, {"max_frame_age_ms": 0.0, "target_rate_hz": 5.0,
                                             "target_latency_ms": 50.0}), {"max_frame_age_ms"})
    assert stage.frames.max_age_ns == 0 and stage.rate.target_hz == 5.0 and stage.latency.target_ms == 50.0
    stage.reconfigure(cfg, set(params.specs(type(cfg))[i].name for i in range(len(params.specs(type(cfg))))))
    with pytest.raises(ValueError, match="read-only"):
        params.update(cfg, {"width": 128})


def test_starved_renderer_reports_warn(render_stage):
    """Frames at 3 per second where 25 are expected: the images-per-second check goes WARN, and says why."""
    stage = render_stage
    got = []
    v, _ = neutral_vertices("default_older")
    stage.start(got.append)
    try:
        stage.report(health.Status(""), now_s=0.0)            # the window starts
        for k in range(3):
            stage.put_mesh(v, time.monotonic_ns() + k)
            assert wait_for(lambda: len(got) == k + 1)
        st = health.Status("")
        stage.report(st, now_s=1.0)                            # 3 images in this 1 s window
    finally:
        stage.stop()
    assert st.level == health.WARN and "images_per_s 3.0 below target 25" in st.message, st.message
    assert st.values["frames_rendered"] >= 3 and len(st.values["stamp_to_publish_ms_each"].split(",")) == 3
    fed = health.Status("")
    stage.rate.tick(25)
    stage.report(fed, now_s=2.0)
    assert fed.level == health.OK, fed.message


# ---- frames ------------------------------------------------------------------------------------------------------
def rotate(q, v):
    x, y, z, w = q
    R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                  [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                  [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    return R @ np.asarray(v, float)


def test_frames_follow_rep103():
    from rsatalker_ros.render.camera import Camera
    from rsatalker_ros.stages.frames import camera_pose, head_rotation, quaternion_from_matrix
    # the head frame (x left, y up, z out of the face) in a REP-103 world facing +x: face along +x, up along +z
    q = head_rotation(0.0)
    np.testing.assert_allclose(rotate(q, [0, 0, 1]), [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(rotate(q, [0, 1, 0]), [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(rotate(head_rotation(90.0), [0, 0, 1]), [0, 1, 0], atol=1e-12)
    # the renderer's camera in front of the face: optical z (forward) looks along head -z, optical y (down) is -y
    cam = Camera.look_at((0.1, 0.0, 0.7), (0.1, 0.0, 0.1), (0.0, 1.0, 0.0), 64, 64, 30.0)
    origin, qc = camera_pose(cam.world_to_cam)
    np.testing.assert_allclose(origin, [0.1, 0.0, 0.7], atol=1e-12)
    np.testing.assert_allclose(rotate(qc, [0, 0, 1]), [0, 0, -1], atol=1e-12)
    np.testing.assert_allclose(rotate(qc, [0, 1, 0]), [0, -1, 0], atol=1e-12)
    # half turns (w = 0) about any axis round-trip, where a sign-of-differences formula loses the axis
    for axis in ([1, 1, 0], [0, 1, 1], [1, -1, 1]):
        a = np.asarray(axis, float) / np.linalg.norm(axis)
        R = 2 * np.outer(a, a) - np.eye(3)                    # 180 degrees about a
        qh = quaternion_from_matrix(R)
        np.testing.assert_allclose(abs(qh[:3] @ a), 1.0, atol=1e-12)
        np.testing.assert_allclose(rotate(qh, [1, 2, 3]), R @ [1, 2, 3], atol=1e-12)
