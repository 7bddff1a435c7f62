"""Teeth of the default heads (face/teeth.py): where they are, how they move, that nothing before them moved, and
that an avatar made before the teeth still works with the grown head."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from rsatalker_ros.avatar.gaussians import GaussianAvatar, bind, load_avatar, save_avatar, select
from rsatalker_ros.face.arkit import ARKIT52_INDEX
from rsatalker_ros.face.head_data import HeadData
from rsatalker_ros.face.head_model import ASSET_DIR, DEFAULT_HEADS, HeadModel, load_head
from rsatalker_ros.face.lbs import axis_angle_to_matrix
from rsatalker_ros.face.regions import LABEL_INDEX
from rsatalker_ros.face.teeth import add_teeth, teeth_faces
from rsatalker_ros.render.mesh_raster import camera_arrays, project, rasterize_triangles
from rsatalker_ros.train.stage3 import orbit_camera


@pytest.fixture(scope="module")
def heads():
    return {n: load_head(n) for n in DEFAULT_HEADS}


def without_teeth(data: HeadData) -> HeadData:
    """The head as anny bakes it, before ``add_teeth``."""
    n_v, n_f = data.meta["teeth"]["first_vertex"], data.meta["teeth"]["first_triangle"]
    meta = {k: v for k, v in data.meta.items() if k != "teeth"}
    return replace(data, v_template=data.v_template[:n_v], faces=data.faces[:n_f], shapedirs=data.shapedirs[:n_v],
                   exprdirs=data.exprdirs[:n_v], weights=data.weights[:n_v], vertex_labels=data.vertex_labels[:n_v],
                   uvs=data.uvs[:int(data.face_uvs[:n_f].max()) + 1], face_uvs=data.face_uvs[:n_f],
                   posedirs=data.posedirs[:, :n_v * 3], meta=meta,
                   regions={k: v for k, v in data.regions.items() if not k.endswith("_teeth")})


def motion(head, jaw_open=0.0, jaw_rot=0.0, neck=(0.0, 0.0, 0.0), **arkit):
    m = torch.zeros(1, head.layout.dim)
    m[0, ARKIT52_INDEX["jawOpen"]] = jaw_open
    for k, w in arkit.items():
        m[0, ARKIT52_INDEX[k]] = w
    m[0, head.layout.jaw.start] = jaw_rot
    m[0, head.layout.neck] = torch.tensor(neck)
    return m


@pytest.mark.parametrize("name", DEFAULT_HEADS)
def test_existing_vertices_and_triangles_keep_their_indices(heads, name):
    data = HeadData.load(ASSET_DIR / f"{name}.npz")
    old = HeadModel(without_teeth(data), name)
    head = heads[name]
    assert head.n_vertices == old.n_vertices + data.meta["teeth"]["vertices"] > old.n_vertices
    assert torch.equal(head.faces[:len(old.faces)], old.faces)
    assert torch.equal(head.face_uvs[:len(old.faces)], old.face_uvs)
    for region, idx in old.regions.items():
        assert torch.equal(head.regions[region], idx), region
    m = torch.cat([motion(head, 0.7, 0.2, (0.1, 0.3, 0.0)), motion(head, mouthSmileLeft=0.8, mouthPucker=0.5)])
    assert torch.equal(head.from_motion(m)[:, :old.n_vertices], old.from_motion(m))
    # baking adds the same teeth again
    again = add_teeth(without_teeth(data))
    assert np.allclose(again.v_template, data.v_template, atol=1e-6) and np.array_equal(again.faces, data.faces)


@pytest.mark.parametrize("name", DEFAULT_HEADS)
def test_upper_teeth_follow_the_skull_and_lower_teeth_the_jaw(heads, name):
    head = heads[name]
    up, lo = head.regions["upper_teeth"], head.regions["lower_teeth"]
    assert (head.vertex_labels[up] == LABEL_INDEX["teeth"]).all() and (head.vertex_labels[lo] == LABEL_INDEX["teeth"]).all()
    rest = head.from_motion(motion(head))[0]
    # jaw rotation: the upper teeth stay, the lower teeth turn rigidly about the jaw joint
    rot = head.from_motion(motion(head, jaw_rot=0.25))[0]
    assert torch.allclose(rot[up], rest[up], atol=1e-7)
    jaw = head.j_template[2]
    turned = (rest[lo] - jaw) @ axis_angle_to_matrix(torch.tensor([[0.25, 0.0, 0.0]]))[0].T + jaw
    assert torch.allclose(rot[lo], turned, atol=1e-6)
    assert float((rot[lo] - rest[lo])[:, 1].mean()) < -0.004          # the lower teeth drop by millimetres
    # jawOpen (a blendshape in these heads): the lower teeth move by the same map as the tongue, which rides on the
    # jaw (the affine map taking the tongue from rest to open carries the teeth to where they go, within 0.5 mm)
    opened = head.from_motion(motion(head, jaw_open=0.8))[0]
    assert torch.allclose(opened[up], rest[up], atol=1e-7)
    tongue = torch.nonzero(head.vertex_labels == LABEL_INDEX["tongue"])[:, 0]
    ones = lambda p: torch.cat([p, torch.ones(len(p), 1)], 1).double()  # noqa: E731
    A = torch.linalg.lstsq(ones(rest[tongue]), opened[tongue].double()).solution
    assert float((ones(rest[lo]) @ A - opened[lo]).norm(dim=1).max()) < 5e-4
    assert float((opened[lo] - rest[lo]).norm(dim=1).mean()) > 0.01     # they did move (~2 cm)
    # lip-only expressions leave the teeth where they are; a head turn carries both arches along
    smile = head.from_motion(motion(head, mouthSmileLeft=1.0, mouthSmileRight=1.0, mouthFunnel=1.0))[0]
    assert torch.allclose(smile[up], rest[up], atol=1e-7) and torch.allclose(smile[lo], rest[lo], atol=1e-7)
    turned_head = head.from_motion(motion(head, neck=(0.0, 0.4, 0.0)))[0]
    assert float((turned_head[up] - rest[up]).norm(dim=1).min()) > 0.01


EYE_LEVEL = ((0, 0), (25, 0), (-25, 0), (0, 10), (60, 0))     # (azimuth, elevation) degrees around the mouth
BELOW = ((0, 0), (0, -20), (40, 5))


def visible_teeth_pixels(head, m, views, size=96):
    """Pixels whose visible surface is a tooth, summed over close-up ``views`` of the mouth (96 px, 30 cm)."""
    verts = head.from_motion(m)[0].numpy().astype(np.float64)
    faces = head.faces.numpy()
    teeth = teeth_faces(faces, {k: v.numpy() for k, v in head.regions.items()})
    mouth = head.neutral()[head.regions["lips"]].mean(0).numpy()
    total = 0
    for az, el in views:
        view, K, w, h = camera_arrays(orbit_camera(mouth, az, el, 0.3, size, 30))
        fid, _, _ = rasterize_triangles(project(verts, view, K), faces, w, h)
        total += int(teeth[fid[fid >= 0]].sum())
    return total


@pytest.mark.parametrize("name", DEFAULT_HEADS)
def test_closed_lips_hide_the_teeth_and_an_open_mouth_shows_them(heads, name):
    # (anny's closed lips leave a hairline slit: seen steeply from below, a pixel or two of tooth can show through
    # it, as with real lips; from the front and the sides at eye level nothing does)
    head = heads[name]
    assert visible_teeth_pixels(head, motion(head), EYE_LEVEL) == 0
    assert visible_teeth_pixels(head, motion(head, mouthPucker=0.6, mouthRollLower=0.5), EYE_LEVEL) == 0
    assert visible_teeth_pixels(head, motion(head, jaw_open=0.5), BELOW) > 40
    assert visible_teeth_pixels(head, motion(head, jaw_rot=0.15), BELOW) > 20


def test_texture_paints_teeth_light_and_the_back_of_the_mouth_dark(heads):
    from rsatalker_ros.avatar.textures import paint_head
    head = heads["default_older"]
    app = paint_head(head, size=128)
    faces = head.faces.numpy()
    centre = np.full((len(faces), 3), 1.0 / 3.0)
    albedo = app.albedo(np.arange(len(faces)), centre)
    teeth = teeth_faces(faces, {k: v.numpy() for k, v in head.regions.items()})
    assert np.median(albedo[teeth].mean(1)) > 0.7
    labels = head.vertex_labels.numpy()[faces]
    z = head.neutral().numpy()[faces].mean(1)[:, 2]
    deep = (labels == LABEL_INDEX["mouth_inside"]).all(1) & (z < z[teeth].min() - 0.01)
    assert deep.sum() > 20 and np.median(albedo[deep].mean(1)) < 0.15


def test_an_avatar_made_before_the_teeth_loads_and_renders_with_the_grown_head(tmp_path, heads):
    head = heads["default_older"]
    n_f = HeadData.load(ASSET_DIR / "default_older.npz").meta["teeth"]["first_triangle"]
    old_faces = head.faces[:n_f]
    av = GaussianAvatar.init_from_mesh(head.neutral().numpy(), old_faces.numpy(), head="default_older")
    p = tmp_path / "old.safetensors"
    save_avatar(p, av)
    loaded = load_avatar(p, faces=head.faces, head="default_older")   # the grown topology is accepted
    g = bind(loaded, head.from_motion(motion(head, jaw_open=0.5))[0])
    assert len(g) == n_f and torch.isfinite(g.means).all()
    # an avatar of the grown head does not fit the head without teeth, nor a head whose old triangles changed
    grown = GaussianAvatar.init_from_mesh(head.neutral().numpy(), head.faces.numpy(), head="default_older")
    with pytest.raises(ValueError, match="topology mismatch"):
        grown.check_topology(old_faces)
    changed = head.faces.clone()
    changed[7] = changed[7][[1, 0, 2]]
    with pytest.raises(ValueError, match="triangle 7 differs"):
        loaded.check_topology(changed)
    assert len(select(grown, torch.nonzero(grown.parent < n_f)[:, 0])) == n_f


def open_mouth_colours(head, avatar, appearance, size=96):
    """(ground-truth, avatar) mean rgb [2, 3] over the cavity (mouth inside, tongue) and the teeth pixels of a
    close-up of the open mouth (0.25 m, 10 degrees above, jawOpen 0.6): the painted head by the mesh rasteriser,
    the avatar by the CPU splatter."""
    from rsatalker_ros.cli.avatar_add_teeth import lips_center
    from rsatalker_ros.render.api import render
    from rsatalker_ros.render.mesh_raster import render_mesh
    verts = head.from_motion(motion(head, jaw_open=0.6))[0]
    cam = orbit_camera(lips_center(head), 0.0, 10.0, 0.25, size, 30)
    truth = render_mesh(verts.numpy(), head.faces.numpy(), cam, albedo_fn=appearance.albedo, supersample=2)
    image = render(bind(avatar, verts), cam, np.ones(3, np.float32), backend="cpu").image.clamp(0, 1).numpy()
    labels = head.vertex_labels.numpy()[head.faces.numpy()]
    fid = truth.face_index
    cavity = np.isin(labels, [LABEL_INDEX["mouth_inside"], LABEL_INDEX["tongue"]]).all(1)[np.maximum(fid, 0)]
    teeth = teeth_faces(head.faces.numpy(), {k: v.numpy() for k, v in head.regions.items()})[np.maximum(fid, 0)]
    out = {}
    for part, mask in (("cavity", cavity & (fid >= 0)), ("teeth", teeth & (fid >= 0))):
        assert mask.sum() > 20, part                 # the pose really shows the part
        out[part] = (truth.image[mask].mean(0), image[mask].mean(0))
    return out


@pytest.mark.parametrize("name", DEFAULT_HEADS)
def test_every_shipped_avatar_level_shows_the_dark_mouth_and_light_teeth_of_the_painted_head(heads, name):
    from rsatalker_ros.avatar.levels import available_levels, load_level
    from rsatalker_ros.avatar.textures import paint_head
    head = heads[name]
    appearance = paint_head(head, size=512)
    for level in available_levels(name):
        got = open_mouth_colours(head, load_level(name, level, faces=head.faces), appearance)
        (cavity_truth, cavity), (teeth_truth, teeth) = got["cavity"], got["teeth"]
        assert np.abs(cavity - cavity_truth).max() < 0.06 and cavity.mean() < 0.2, (level, cavity, cavity_truth)
        assert teeth.mean() > 0.45 and teeth.mean() > cavity.mean() + 0.3, (level, teeth, teeth_truth)
