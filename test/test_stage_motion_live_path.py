"""The motion stage's live per-frame path (20 ms chunks of both streams, as the node gets them) gives the frames of
the reference path: the batch model on the whole audio, with the partner motion the stream predicted, posed by
HeadModel.from_motion."""

import numpy as np
import torch

from rsatalker_ros.motion.features import frame_features
from rsatalker_ros.stages import params
from support.assets import motion_checkpoint
from support.ros_harness import demo_audio


def test_live_frames_equal_the_batch_model_and_head(tmp_path):
    from rsatalker_ros.stages.motion import MotionConfig, MotionStage
    stage = MotionStage(params.build(MotionConfig, {"checkpoint": motion_checkpoint(tmp_path),
                                                    "relation_source": "parameters", "relation_kinship": "blood",
                                                    "relation_hierarchy": "unequal", "relation_senior": "bob"}))
    a, b, _ = demo_audio(3.0)           # alice speaks, bob listens
    t0, frames, partner, aligned_at = 10**12, [], [], []
    for k in range(0, a.size, 320):
        for stream, x in ((0, a), (1, b)):
            out, restarted = stage.push_audio(stream, x[k:k + 320], t0 + k * 62_500)
            assert not restarted
            if out:                                     # the partner's frames of the same model step
                frames += out
                partner += stage.stream.last_partner_frames
                aligned_at += [k + 320] * len(out)      # samples of both streams there when it came out
    T = a.size // 640 - 1                               # the last frame waits for look-ahead past the end
    assert len(frames) == T and len(partner) == T
    # no frame waits for more audio than its own look-ahead (600 samples, 37.5 ms): each comes out with the
    # first 20 ms chunk that completes it, although the stage hands the model its audio a frame at a time
    assert aligned_at == [-(-(640 * (i + 1) + 600) // 320) * 320 for i in range(T)]
    assert [f.stamp_ns for f in frames] == [t0 + 20_000_000 + 40_000_000 * i for i in range(T)]
    motion = np.stack([f.motion for f in frames])
    feats = torch.stack([frame_features(w[:T * 640]) for w in (a, b)])
    with torch.inference_mode():
        ref = stage.model(feats[:1], feats[1:], torch.from_numpy(np.stack([m for _, m in partner]))[None],
                          stage.stream._dyad.queries[:1])[0].numpy()
        ref_verts = stage.head.from_motion(torch.from_numpy(motion)).numpy()
    # the batch model pads the end with silence where the stream heard the next frame: that frame differs
    np.testing.assert_allclose(motion[:-1], ref[:-1], atol=1e-4)
    assert motion.std(0).max() > 1e-2, "the reference check needs moving frames"
    verts = np.stack([f.vertices for f in frames])
    assert verts.dtype == np.float32 and np.abs(verts - ref_verts).max() < 1e-6


def test_frames_whose_audio_came_late_are_stepped_but_skipped_then_the_stage_catches_up(tmp_path):
    """A node starved for 0.5 s gets that audio as one late burst (its DDS queue). Frames whose audio is more than
    max_lag_ms later than the most punctual one are computed but not skinned or returned, counted by cause; the frames it returns are the same
    motion as without the stall (the model stepped through every sample), and it is on time again afterwards."""
    from rsatalker_ros.stages.motion import MotionConfig, MotionStage
    stage = MotionStage(params.build(MotionConfig, {"checkpoint": motion_checkpoint(tmp_path),
                                                    "relation_source": "parameters", "max_lag_ms": 100.0}))
    a, b, _ = demo_audio(2.4)
    chunk_ns = 20_000_000

    def run(t0, arrival):              # arrival(t0, k) -> now_ns when chunk k arrives
        out = {}
        for k in range(a.size // 320):
            now = arrival(t0, k)
            for stream, x in ((0, a), (1, b)):
                frames, _ = stage.push_audio(stream, x[k * 320:(k + 1) * 320], t0 + k * chunk_ns, now)
                out.update({(f.stamp_ns - t0) // 40_000_000: (f, now) for f in frames})
        return out

    # on time, on a clock 5 s ahead of the capture host's: an offset is not lateness
    reference = run(10**12, lambda t0, k: t0 + (k + 1) * chunk_ns + 5 * 10**9)
    assert stage.skipped["late_audio"] == 0 and len(reference) == a.size // 640 - 1
    stall = range(40, 65)              # chunks of 0.8 .. 1.3 s arrive together at 1.32 s (+2 ms transport)
    late = run(10**12 + 100 * 10**9, lambda t0, k: t0 + ((stall[-1] if k in stall else k) + 1) * chunk_ns + 2_000_000)
    skipped = stage.skipped["late_audio"]
    assert 5 <= skipped <= 12, "the frames whose audio came 100 .. 500 ms late"
    assert len(late) + skipped == len(reference), "every frame computed is published or counted as skipped"
    assert stage.last_skip_lag_ms > 100.0
    for i, (f, now) in late.items():   # published: the same motion as without the stall, audio <= 100 ms old
        np.testing.assert_allclose(f.motion, reference[i][0].motion, atol=1e-6)
        assert f.vertices is not None and stage.audio_lag_ms(f.stamp_ns, now) <= 100.0
    assert all(i in late for i in reference if i > 34), "on time again from the end of the stall on"
