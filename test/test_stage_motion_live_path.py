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
    t0, frames, partner = 10**12, [], []
    for k in range(0, a.size, 320):
        for stream, x in ((0, a), (1, b)):
            out, restarted = stage.push_audio(stream, x[k:k + 320], t0 + k * 62_500)
            assert not restarted
            if out:                                     # the partner's frames of the same model step
                frames += out
                partner += stage.stream.last_partner_frames
    T = a.size // 640 - 1                               # the last frame waits for look-ahead past the end
    assert len(frames) == T and len(partner) == T
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
