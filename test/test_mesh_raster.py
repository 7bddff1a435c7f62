"""The textured-mesh rasteriser: coverage, colour, z-buffer, perspective-correct UVs, anti-aliasing."""

import numpy as np
import pytest

from rsatalker_ros.render.camera import Camera
from rsatalker_ros.render.mesh_raster import rasterize_triangles, render_mesh, sample_texture


def PinholeCamera(width=32, height=32, f=32.0):
    """Camera at the origin looking down +z (OpenCV convention), focal f pixels, principal point at width / 2."""
    return Camera(width, height, f, f, width / 2, height / 2)


def _pixels_inside(tri_px, width, height):
    """Reference: pixel centres strictly inside a screen-space triangle (a brute-force half-plane test)."""
    ys, xs = np.mgrid[0:height, 0:width]
    p = np.stack([xs, ys], -1)  # pixel centres at integers (OpenCV)
    a, b, c = tri_px
    def side(p0, p1):
        return (p1[0] - p0[0]) * (p[..., 1] - p0[1]) - (p1[1] - p0[1]) * (p[..., 0] - p0[0])
    s0, s1, s2 = side(a, b), side(b, c), side(c, a)
    return ((s0 > 0) & (s1 > 0) & (s2 > 0)) | ((s0 < 0) & (s1 < 0) & (s2 < 0))


def test_triangle_covers_expected_pixels_with_its_colour():
    cam = PinholeCamera()
    z = 2.0
    # Screen-space corners (pixels) back-projected to depth z: x_world = (px - cx) * z / f.
    tri_px = np.array([[4.2, 3.1], [27.7, 8.3], [11.4, 28.9]])
    verts = np.concatenate([(tri_px - 16.0) * z / 32.0, np.full((3, 1), z)], axis=1)
    colour = np.array([0.8, 0.2, 0.1])
    out = render_mesh(verts, np.array([[0, 1, 2]]), cam, vertex_colors=np.tile(colour, (3, 1)),
                      background=(0, 0, 1), ambient=1.0, diffuse=0.0)
    expected = _pixels_inside(tri_px, 32, 32)
    assert expected.sum() > 200
    covered = out.face_index >= 0
    # Edge pixels may go either way (centre exactly on an edge); interior pixels must match exactly.
    assert (covered == expected).mean() > 0.99
    assert np.allclose(out.image[expected & covered], colour, atol=1e-5)
    assert np.allclose(out.image[~covered], [0, 0, 1])
    assert np.allclose(out.depth[covered], z, atol=1e-5)
    assert np.all(np.isinf(out.depth[~covered]))


def test_zbuffer_hides_far_triangle_whatever_the_draw_order():
    cam = PinholeCamera()
    quad = np.array([[-1, -1], [1, -1], [0, 1.0]])
    near = np.concatenate([quad * 0.5, np.full((3, 1), 1.0)], 1)
    far = np.concatenate([quad * 2.0, np.full((3, 1), 4.0)], 1)
    colors = np.array([[1, 0, 0]] * 3 + [[0, 1, 0]] * 3, float)
    for order in ([0, 1], [1, 0]):
        tris = [np.array([0, 1, 2]), np.array([3, 4, 5])]
        faces = np.stack([tris[i] for i in order])
        out = render_mesh(np.concatenate([near, far]), faces, cam, vertex_colors=colors, ambient=1.0, diffuse=0.0)
        centre = out.image[16, 16]
        assert np.allclose(centre, [1, 0, 0]), f"order {order}: near (red) triangle must win, got {centre}"
        assert out.depth[16, 16] == pytest.approx(1.0, abs=1e-5)


def test_perspective_correct_uv_on_slanted_quad():
    """A quad receding in depth: the texture boundary at u = 0.5 must land where the 3D midpoint projects."""
    cam = PinholeCamera(64, 64, 64.0)
    verts = np.array([[-1, -0.5, 1.0], [1, -0.5, 3.0], [1, 0.5, 3.0], [-1, 0.5, 1.0]])
    uvs = np.array([[0, 0], [1, 0], [1, 1], [0, 1.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    tex = np.zeros((4, 8, 3), np.float32)
    tex[:, 4:] = 1.0  # right half white
    out = render_mesh(verts, faces, cam, texture=tex, uvs=uvs, face_uvs=faces, ambient=1.0, diffuse=0.0,
                      background=(0.5, 0.5, 0.5))
    row = out.image[32, :, 0]
    # 3D midpoint of the top edge (0, 0, 2) projects to x = 32; an affine (wrong) interpolation would put the
    # boundary at the screen midpoint of the projected edge, x = (0 + 53.3) / 2 ~ 26.7.
    cols = np.nonzero(out.face_index[32] >= 0)[0]
    boundary = cols[np.argmax(row[cols] > 0.5)]
    assert abs(boundary - 32) <= 1


def test_supersampling_gives_fractional_edge_coverage():
    cam = PinholeCamera(16, 16, 16.0)
    verts = np.array([[-0.3, -2, 1.0], [5, -2, 1.0], [-0.3, 5, 1.0]])  # vertical edge at u = 16*(-0.3)+8 = 3.2 px
    out = render_mesh(verts, np.array([[0, 1, 2]]), cam, vertex_colors=np.ones((3, 3)), background=(0, 0, 0),
                      ambient=1.0, diffuse=0.0, supersample=4)
    assert 0.0 < out.alpha[8, 3] < 1.0
    assert out.alpha[8, 8] == 1.0 and out.alpha[8, 0] == 0.0


def test_lambert_shading_follows_the_light():
    cam = PinholeCamera()
    verts = np.array([[-1, -1, 2.0], [1, -1, 2.0], [0, 1, 2.0]])
    faces = np.array([[0, 1, 2]])
    lit = render_mesh(verts, faces, cam, vertex_colors=np.ones((3, 3)), light_dir=(0, 0, -1),
                      ambient=0.2, diffuse=0.8).image[16, 16]
    grazing = render_mesh(verts, faces, cam, vertex_colors=np.ones((3, 3)), light_dir=(1, 0, 0),
                          ambient=0.2, diffuse=0.8).image[16, 16]
    assert np.allclose(lit, 1.0, atol=1e-5)   # normal towards the camera (-z) faces the light
    assert np.allclose(grazing, 0.2, atol=1e-5)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="faces"):
        rasterize_triangles(np.zeros((3, 3)), np.array([[0, 1, 5]]), 8, 8)
    with pytest.raises(ValueError, match="screen"):
        rasterize_triangles(np.zeros((3, 2)), np.array([[0, 1, 2]]), 8, 8)
    with pytest.raises(ValueError, match="supersample"):
        render_mesh(np.zeros((3, 3)), np.array([[0, 1, 2]]), PinholeCamera(), supersample=0)


def test_sample_texture_bilinear_and_v_up():
    tex = np.zeros((2, 2, 1), np.float32)
    tex[0, :, 0] = 1.0  # top row (v = 1) white
    assert sample_texture(tex, np.array([0.5, 0.99]))[0] == pytest.approx(1.0)
    assert sample_texture(tex, np.array([0.5, 0.01]))[0] == pytest.approx(0.0)
    assert sample_texture(tex, np.array([0.5, 0.5]))[0] == pytest.approx(0.5)
