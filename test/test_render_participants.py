"""The multi-participant render loop (render/participants.py): each participant gets its own avatar, camera,
background and stamp; bad input for one is rejected by name while the others render; on the GPU path (gsplat
stand-in with gsplat 1.5.3's batching rules) one rasterisation per image size draws everyone."""

import sys
import types

import numpy as np
import pytest
import torch

from rsatalker_ros.avatar.gaussians import FastBinder, GaussianAvatar
from rsatalker_ros.avatar.meshes import icosphere
from rsatalker_ros.render.api import render_uint8
from rsatalker_ros.render.camera import Camera
from rsatalker_ros.render.participants import Participant, ParticipantRenderer

from test_render_gsplat_adapter import fake_rasterization  # noqa: E402


def _setup():
    v, f = icosphere(2, 0.1)
    a = GaussianAvatar.init_from_mesh(v, f, per_triangle=2, colors=np.tile([[0.9, 0.5, 0.4]], (len(f), 1)), seed=0)
    b = GaussianAvatar.init_from_mesh(v, f, per_triangle=1, sh_degree=1,
                                      colors=np.tile([[0.3, 0.6, 0.9]], (len(f), 1)), seed=1)
    cam = lambda x, w, h: Camera.look_at([x, 0.0, 0.5], [0, 0, 0], [0, 1, 0], w, h, 40)  # noqa: E731
    people = [Participant("alice", a, cam(0.0, 40, 32), (1.0, 1.0, 1.0)),
              Participant("bob", a, cam(0.2, 40, 32)),
              Participant("carol", b, cam(-0.2, 48, 40), (0.2, 0.3, 0.4))]
    rng = np.random.default_rng(0)
    verts = {p.name: (v * (1 + 0.1 * rng.random(3))).astype(np.float32) for p in people}
    return people, verts


def _expected(p, v):
    return render_uint8(FastBinder(p.avatar)(v), p.camera, p.background, backend="cpu")


def test_cpu_loop_renders_each_participant_with_its_own_view_and_keeps_stamps():
    people, verts = _setup()
    loop = ParticipantRenderer(people, backend="cpu")
    tick = loop.render_tick({"alice": (verts["alice"], 101), "carol": (verts["carol"], 103)})
    assert not tick.rejected
    got = {f.name: f for f in tick.frames}
    assert set(got) == {"alice", "carol"}  # bob had no new frame: not rendered
    assert got["alice"].stamp == 101 and got["carol"].stamp == 103
    assert got["carol"].image.shape == (40, 48, 3) and got["alice"].image.shape == (32, 40, 3)
    for p in people:
        if p.name in got:
            assert np.array_equal(got[p.name].image, _expected(p, verts[p.name])), p.name


def test_bad_input_for_one_participant_is_rejected_by_name_and_the_others_render():
    people, verts = _setup()
    loop = ParticipantRenderer(people, backend="cpu")
    nan = verts["bob"].copy()
    nan[3, 1] = np.nan
    tick = loop.render_tick({"alice": (verts["alice"], 1), "bob": (nan, 2), "dave": (verts["alice"], 3),
                             "carol": (verts["carol"][:5], 4)})
    assert [f.name for f in tick.frames] == ["alice"]
    assert "NaN" in tick.rejected["bob"] and "unknown participant" in tick.rejected["dave"]
    assert "expected [V >=" in tick.rejected["carol"]
    with pytest.raises(ValueError, match="unique names"):
        ParticipantRenderer(people + [people[0]], backend="cpu")


def test_gpu_path_batches_by_image_size_and_matches_the_cpu_images(monkeypatch):
    calls = []

    def counted(*args, **kw):
        calls.append(tuple(args[0].shape))
        return fake_rasterization(*args, **kw)
    monkeypatch.setitem(sys.modules, "gsplat", types.SimpleNamespace(rasterization=counted))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    people, verts = _setup()
    loop = ParticipantRenderer(people, backend="gsplat", device="cpu")  # the stand-in runs on the CPU
    assert loop.backend == "gsplat"
    tick = loop.render_tick({p.name: (verts[p.name], i) for i, p in enumerate(people)})
    assert sorted(calls) == [(1, 320, 3), (2, 640, 3)]  # carol alone at 48x40; alice and bob in one call
    for f in tick.frames:
        p = loop.participants[f.name]
        assert f.stamp == [q.name for q in people].index(f.name)
        assert np.abs(f.image.astype(int) - _expected(p, verts[f.name])).mean() < 1.0, f.name
    loop.set_camera("bob", Camera.look_at([0.0, 0.2, 0.5], [0, 0, 0], [0, 1, 0], 40, 32, 40))
    tick = loop.render_tick({"bob": (verts["bob"], 9)})
    bob = loop.participants["bob"]
    assert np.abs(tick.frames[0].image.astype(int) - _expected(bob, verts["bob"])).mean() < 1.0
