"""The painted default-head texture, rendered with the textured-mesh rasteriser, puts features where they belong."""

import numpy as np
import pytest

from rsatalker_ros.avatar.textures import PALETTES, paint_head, paint_texture
from rsatalker_ros.face.head_model import load_head
from rsatalker_ros.render.camera import Camera
from rsatalker_ros.render.mesh_raster import render_mesh


@pytest.fixture(scope="module")
def front():
    head = load_head("default_younger")
    app = paint_head(head, size=256)
    tex = app.texture
    v = head.neutral().numpy()
    center = 0.5 * (v.min(0) + v.max(0))
    cam = Camera.look_at(center + np.array([0, 0, 0.6]), center, (0, 1, 0), 160, 160, 30)
    out = render_mesh(v, head.faces.numpy(), cam, albedo_fn=app.albedo, supersample=2, background=(0, 0, 1))
    return head, tex, cam, out


def _pixel(cam, p):
    uv, _ = cam.project(p[None])
    return int(round(uv[0, 1])), int(round(uv[0, 0]))


def test_texture_shape_and_range(front):
    _, tex, _, _ = front
    assert tex.shape == (256, 256, 3) and tex.dtype == np.float32
    assert tex.min() >= 0.0 and tex.max() <= 1.0


def test_features_land_on_their_regions(front):
    head, _, cam, out = front
    v = head.neutral().numpy()
    img = out.image
    pal = PALETTES["default_younger"]
    # lips: redder than the cheek skin
    lip = v[head.regions["lips"].numpy()]
    r, c = _pixel(cam, lip[np.argmax(lip[:, 2])])
    lip_px = img[r, c]
    forehead = v[np.argmax(np.where(np.abs(v[:, 0]) < 0.01, v[:, 2] - 10 * np.abs(v[:, 1] - 0.07), -np.inf))]
    fr, fc = _pixel(cam, forehead)
    skin_px = img[fr, fc]
    assert lip_px[0] / lip_px[1] > skin_px[0] / skin_px[1] + 0.15
    # pupils (drawn per pixel by HeadAppearance): dark, inside a bright sclera
    for k, eye in enumerate(head.j_template[3:5].numpy()):  # eye joints: the pupil is straight in front
        r, c = _pixel(cam, eye)
        assert img[r, c].max() < 0.25, f"eye {k}: the pupil should be dark, got {img[r, c]}"
        assert img[r - 4:r + 5, c - 8:c + 9].max() > 0.6  # with bright sclera around it
    # hair on top of the head takes the hair colour (brightness ratio, shading scales all channels alike)
    top = v[np.argmax(v[:, 1])]
    cam_top = Camera.look_at(top + np.array([0, 0.5, 0.05]), top, (0, 0, -1), 64, 64, 20)
    hair = render_mesh(v, head.faces.numpy(), cam_top, texture=paint_texture(head, size=128),
                       uvs=head.uvs.numpy(), face_uvs=head.face_uvs.numpy()).image[32, 32]
    ratio = hair / np.asarray(pal.hair)
    assert np.allclose(ratio, ratio.mean(), rtol=0.15)
    assert np.all(out.image[0, 0] == [0, 0, 1])


def test_paint_texture_needs_uvs_and_labels():
    class Bare:
        uvs = None
        face_uvs = None
        vertex_labels = None
    with pytest.raises(ValueError, match="UVs"):
        paint_texture(Bare())
