"""rsatalker-render: motion (.npy or a clip folder) in, an mp4 with the right frame count (+ audio) and a PNG out."""

import re
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from rsatalker_ros.avatar.gaussians import GaussianAvatar, save_avatar
from rsatalker_ros.cli.render import main
from rsatalker_ros.data.dataset import Clip, save_clip
from rsatalker_ros.face.head_model import load_head
from rsatalker_ros.motion.layout import ARKIT_LAYOUT, SAMPLES_PER_FRAME
from rsatalker_ros.social.relation import Hierarchy, Kinship, Relation


@pytest.fixture(scope="module")
def avatar_file(tmp_path_factory):
    head = load_head("default_older")
    av = GaussianAvatar.init_from_mesh(head.neutral().numpy(), head.faces.numpy(), head="default_older")
    path = tmp_path_factory.mktemp("avatar") / "small.safetensors"
    save_avatar(path, av)
    return path


def _motion(t):
    m = np.zeros((t, 64), np.float32)
    m[:, ARKIT_LAYOUT.jaw.start] = 0.25 * (1 + np.sin(np.arange(t) / 2.0)) / 2
    return m


def _probe(path):
    """(video frame count, has an audio stream) of a media file."""
    n, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    info = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                          capture_output=True, text=True).stderr
    return n, re.search(r"Stream #.*Audio", info) is not None


def test_npy_with_audio_gives_mp4_with_all_frames_audio_and_sheet(tmp_path, avatar_file):
    np.save(tmp_path / "m.npy", _motion(12))
    from rsatalker_ros.cli.render import _write_wav
    t = np.arange(12 * SAMPLES_PER_FRAME) / 16000.0
    _write_wav(tmp_path / "a.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 16000)
    out = tmp_path / "out.mp4"
    rc = main([str(tmp_path / "m.npy"), "--audio", str(tmp_path / "a.wav"), "--out", str(out),
               "--avatar", str(avatar_file), "--size", "64", "--sheet-frames", "4"])
    assert rc == 0
    n, has_audio = _probe(out)
    assert n == 12 and has_audio
    sheet = np.asarray(Image.open(out.with_suffix(".png")))
    assert sheet.shape == (64, 4 * 64, 3)
    assert sheet.std() > 5  # the avatar is drawn, not a blank page


def test_clip_folder_input_uses_participant_audio(tmp_path, avatar_file):
    t = 10
    clip = Clip(clip_id="c1", participants=("alice", "bob"),
                audio={p: np.zeros(t * SAMPLES_PER_FRAME, np.float32) for p in ("alice", "bob")},
                motion={"alice": _motion(t), "bob": _motion(t)},
                speaking={p: np.zeros(t, bool) for p in ("alice", "bob")},
                relation=Relation(Kinship.NON_BLOOD, Hierarchy.EQUAL), basis="arkit52",
                heads={"alice": "default_older", "bob": "default_younger"})
    folder = save_clip(clip, tmp_path / "clips" / "c1")
    out = tmp_path / "clip.mp4"
    rc = main([str(folder), "--participant", "bob", "--head", "default_older", "--avatar", str(avatar_file),
               "--out", str(out), "--sheet", str(tmp_path / "s.png"), "--size", "48", "--sheet-frames", "3"])
    assert rc == 0
    n, has_audio = _probe(out)
    assert n == t and has_audio
    assert np.asarray(Image.open(tmp_path / "s.png")).shape[:2] == (48, 4 * 48)


def test_bad_inputs_fail_with_a_message(tmp_path, avatar_file, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((5, 10), np.float32))
    assert main([str(tmp_path / "bad.npy"), "--avatar", str(avatar_file), "--out", str(tmp_path / "x.mp4")]) == 2
    assert "64" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.npy"), "--out", str(tmp_path / "x.mp4")]) == 2
    np.save(tmp_path / "m.npy", _motion(3))
    assert main([str(tmp_path / "m.npy"), "--avatar", str(avatar_file), "--size", "33"]) == 2
    assert "even" in capsys.readouterr().err
