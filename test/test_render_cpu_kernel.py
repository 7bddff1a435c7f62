"""The CPU rasteriser's two paths: the C++ kernel (``render/raster_c.py``, the default where it builds) and the numba
kernels (the fallback) give the torch reference's images, each other's, and the same images on 1 and 2 threads;
without a compiler, or when asked, the numba path renders and the reason is logged once; a new build removes the
cached builds unused for a day."""

import logging
import os
import time

import numba
import numpy as np
import pytest

from rsatalker_ros.render import raster_c
from rsatalker_ros.render.api import _cpu_inputs, render
from rsatalker_ros.render.cpu_tiles import render_cpu
from test_render_backends import CAM, random_scene  # noqa: E402
from test_render_cpu_edges import CAM as EDGE_CAM, edge_scene  # noqa: E402

needs_kernel = pytest.mark.skipif(raster_c.load() is None, reason=f"C++ kernel unavailable: {raster_c.reason()}")


@pytest.fixture
def fresh_loader(monkeypatch):
    """raster_c with its load() state cleared (restored afterwards)."""
    monkeypatch.setattr(raster_c, "_state", {})
    return raster_c


@needs_kernel
@pytest.mark.parametrize("scene, cam, bg", [(lambda: random_scene(3, sh_degree=1), CAM, (0.2, 0.5, 0.9)),
                                           (lambda: edge_scene(4), EDGE_CAM, (1.0, 1.0, 1.0))])
def test_c_kernel_matches_reference_and_numba(scene, cam, bg):
    g = scene()
    bg = np.asarray(bg, np.float32)
    ref = render(g, cam, background=bg, backend="torch")
    x = _cpu_inputs(g)
    c_img, c_alpha, c_depth = render_cpu(*x, cam, bg)
    n_img, n_alpha, n_depth = render_cpu(*x, cam, bg, use_c=False)
    assert float(ref.alpha.max()) > 0.9  # something drawn
    assert np.abs(c_img - ref.image.numpy()).mean() < 0.1 / 255
    assert np.abs(c_alpha - ref.alpha.numpy()).mean() < 0.1 / 255
    assert np.abs(c_img - n_img).max() < 1.0 / 255  # the two paths agree pixel by pixel
    assert np.abs(c_alpha - n_alpha).max() < 1.0 / 255
    drawn = c_alpha > 0.5
    assert np.abs(c_depth - n_depth)[drawn].max() < 1e-3 * float(c_depth[drawn].max())
    c8 = render_cpu(*x, cam, bg, uint8=True)
    n8 = render_cpu(*x, cam, bg, uint8=True, use_c=False)
    assert c8.dtype == np.uint8 and c8.shape == (cam.height, cam.width, 3)
    assert np.abs(c8.astype(int) - n8).max() <= 1
    assert np.abs(c8.astype(int) - (np.clip(c_img, 0, 1) * 255 + 0.5).astype(np.uint8)).max() <= 1


@needs_kernel
def test_c_kernel_threads_give_the_same_image():
    g = random_scene(5)
    x = _cpu_inputs(g)
    bg = np.zeros(3, np.float32)
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = render_cpu(*x, CAM, bg, uint8=True, chunksize=1)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = render_cpu(*x, CAM, bg, uint8=True, chunksize=1)
    finally:
        numba.set_num_threads(previous)
    assert np.array_equal(one, two)


def test_fallback_when_asked(fresh_loader, monkeypatch, caplog):
    monkeypatch.setenv("RSATALKER_RASTER", "numba")
    g = random_scene(6)
    x = _cpu_inputs(g)
    bg = np.ones(3, np.float32)
    with caplog.at_level(logging.WARNING, logger=raster_c.__name__):
        first = render_cpu(*x, CAM, bg, uint8=True)
        second = render_cpu(*x, CAM, bg, uint8=True)
    assert fresh_loader.load() is None and "RSATALKER_RASTER=numba" in fresh_loader.reason()
    said = [r for r in caplog.records if "numba" in r.getMessage()]
    assert len(said) == 1  # logged once, not per frame
    assert np.array_equal(first, second)
    assert np.array_equal(first, render_cpu(*x, CAM, bg, uint8=True, use_c=False))


def test_fallback_without_a_compiler(fresh_loader, monkeypatch, tmp_path):
    monkeypatch.setenv("RSATALKER_KERNEL_CACHE", str(tmp_path))  # nothing cached there
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.delenv("RSATALKER_RASTER", raising=False)
    assert fresh_loader.load() is None
    assert "no-such-compiler" in fresh_loader.reason()
    g = random_scene(7)
    ref = render(g, CAM, background=(0, 0, 0), backend="torch")
    img, _, _ = render_cpu(*_cpu_inputs(g), CAM, np.zeros(3, np.float32))
    assert np.abs(img - ref.image.numpy()).mean() < 1 / 255
    assert list(tmp_path.iterdir()) == []  # no half-built library left behind


def test_new_build_prunes_stale_builds_only(tmp_path):
    now = time.time()
    keep = tmp_path / "raster_kernel_new.so"
    stale = [tmp_path / "raster_kernel_old.so", tmp_path / "raster_kernel_old.so.1234.tmp"]
    recent = tmp_path / "raster_kernel_recent.so"  # another checkout's build, loaded an hour ago
    other = tmp_path / "notes.txt"  # not a kernel build
    for p in [keep, *stale, recent, other]:
        p.write_bytes(b"x")
    for p in [keep, *stale, other]:
        os.utime(p, (now - 2 * raster_c.STALE_AFTER_S,) * 2)
    os.utime(recent, (now - 3600,) * 2)
    assert sorted(raster_c.prune(tmp_path, keep=keep)) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([keep.name, recent.name, other.name])
