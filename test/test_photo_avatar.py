"""Avatar from one photo: every bad photo gets a clear error; the whole pipeline runs on a small real portrait
(scikit-image's astronaut, public domain) and its head and avatar plug into the graph like the default ones."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

skimage_data = pytest.importorskip("skimage.data")
pytest.importorskip("dlib")

from rsatalker_ros.photo_avatar.detect import PhotoError, detect_face, load_photo  # noqa: E402


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()                       # 512 x 512, one face, eyes ~43 px apart


def test_unreadable_and_missing_photo(tmp_path):
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"this is not a JPEG")
    with pytest.raises(PhotoError, match="not a readable image"):
        load_photo(bad)
    with pytest.raises(PhotoError, match="does not exist"):
        load_photo(tmp_path / "missing.png")


def test_no_face():
    ramp = np.tile(np.linspace(0, 255, 320, dtype=np.uint8)[None, :, None], (240, 1, 3))
    with pytest.raises(PhotoError, match="no face found"):
        detect_face(ramp)


def test_several_faces(astronaut):
    head = astronaut[20:260, 100:340]
    with pytest.raises(PhotoError, match="2 faces found.*exactly one"):
        detect_face(np.concatenate([head, head], axis=1))


def test_tiny_face(astronaut):
    small = np.asarray(Image.fromarray(astronaut).resize((256, 256), Image.BILINEAR))   # eyes ~22 px apart
    with pytest.raises(PhotoError, match="too small.*at least 24 px"):
        detect_face(small)


def test_profile_face():
    """A face turned 40 degrees (the painted default head) is found by dlib but refused as a profile."""
    from rsatalker_ros.avatar.textures import paint_head
    from rsatalker_ros.face.head_model import load_head
    from rsatalker_ros.render.mesh_raster import render_mesh
    from rsatalker_ros.train.stage3 import head_center, orbit_camera
    head = load_head("default_older")
    cam = orbit_camera(head_center(head), 40.0, 0.0, 0.62, 240, 30.0)
    img = render_mesh(head.neutral().detach().numpy(), head.faces.numpy(), cam,
                      albedo_fn=paint_head(head, size=256).albedo, supersample=2).image
    with pytest.raises(PhotoError, match="turned too far to the side"):
        detect_face((img * 255 + 0.5).astype(np.uint8))


def test_cli_reports_bad_photo_and_exits_2(tmp_path, capsys):
    from rsatalker_ros.cli.avatar_from_photo import main
    bad = tmp_path / "ramp.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(bad)
    assert main([str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "no face found" in capsys.readouterr().err


@pytest.mark.slow
def test_pipeline_on_a_small_portrait(tmp_path, astronaut):
    """A 224 px crop of the portrait, few iterations: head + avatar + its levels + report, loadable the way the graph
    loads."""
    pytest.importorskip("anny")
    from rsatalker_ros.avatar.avatar_io import load_avatar, resolve_avatar
    from rsatalker_ros.face.head_model import load_head
    from rsatalker_ros.photo_avatar.pipeline import PhotoAvatarConfig, avatar_from_photo
    photo = tmp_path / "eileen.png"
    Image.fromarray(astronaut[10:234, 108:332]).save(photo)
    cfg = PhotoAvatarConfig(n_views=3, view_size=64, texture_size=128, report_size=96)
    cfg.fit.pose_steps, cfg.fit.steps = 60, 40
    cfg.stage3.iterations, cfg.stage3.densify_until, cfg.stage3.min_gaussians = 3, 0, 0
    cfg.level_iterations, cfg.heldout_views = 3, 2
    report = avatar_from_photo(photo, tmp_path / "out", cfg, show_progress=False)

    out = tmp_path / "out"
    assert json.loads((out / "report.json").read_text())["name"] == "eileen"
    for name in ("report.png", "visemes.png", "landmarks.png", "texture.png", "defaults.png"):
        assert Image.open(out / name).size[0] > 0
    # the fitted head: default topology, another shape; its avatar is found beside it and matches it
    head = load_head(str(out / "eileen.npz"))
    default = load_head("default_younger")
    assert torch.equal(head.faces, default.faces)
    assert (head.v_template - default.v_template).abs().max() > 1e-3
    avatar = load_avatar(resolve_avatar(str(out / "eileen.npz")), faces=head.faces, head="eileen")
    assert len(avatar) >= head.faces.shape[0]
    # its levels of detail lie beside it, load on the head's topology and are measured in the report
    from rsatalker_ros.avatar.levels import LEVEL_BUDGETS, available_levels, load_level
    assert available_levels(str(out / "eileen.npz")) == ["full", "12k", "6k"]
    for level, budget in LEVEL_BUDGETS.items():
        assert (out / f"eileen.{level}.safetensors").is_file()
        assert 0 < len(load_level(str(out / "eileen.npz"), level, faces=head.faces)) <= budget
        assert report["levels"][level]["gaussians"] <= budget
    assert list(report["levels"]) == ["full", "12k", "6k"]
    assert all(5.0 < m["psnr"] < 60.0 for m in report["levels"].values()), report["levels"]
    # figures: landmarks fitted (even with few steps), the texture comes from the photo where the face is seen
    assert report["landmark_error_iod_percent"] < 8.0
    assert report["texture"]["from_photo"] > 0.05
    assert 5.0 < report["psnr_face_db"] < 60.0
    assert set(report["identity_distance"]) == {"fitted", "default_older", "default_younger"}


def test_head_file_finds_the_avatar_beside_it(tmp_path):
    """The renderer's default avatar for head DIR/x.npz is DIR/x.safetensors (what the photo tool writes)."""
    import shutil
    from rsatalker_ros.avatar.avatar_io import AVATAR_DIR, resolve_avatar
    from rsatalker_ros.face.head_model import ASSET_DIR
    head = tmp_path / "me.npz"
    shutil.copy(ASSET_DIR / "default_younger.npz", head)
    with pytest.raises(ValueError, match="no avatar beside head file.*me.safetensors"):
        resolve_avatar(str(head))
    shutil.copy(AVATAR_DIR / "default_younger.safetensors", tmp_path / "me.safetensors")
    assert resolve_avatar(str(head)) == tmp_path / "me.safetensors"
