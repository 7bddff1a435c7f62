"""The capacity benchmark (``rsatalker-bench-render --avatars N``): runs on the CPU renderer here and reports a
row per avatar count; its gsplat path runs against the stand-in that follows gsplat 1.5.3's batching rules."""

import json
import sys
import types

import numpy as np
import torch

from rsatalker_ros.avatar.gaussians import GaussianAvatar
from rsatalker_ros.avatar.meshes import icosphere
from rsatalker_ros.cli import bench_render

from test_render_gsplat_adapter import fake_rasterization  # noqa: E402


def test_cpu_capacity_benchmark_writes_one_row_per_avatar_count(tmp_path):
    out = tmp_path / "cap.json"
    assert bench_render.main(["--backend", "cpu", "--avatars", "3", "--size", "24", "--ticks", "1",
                              "--json", str(out)]) is None  # the console script's exit status stays 0
    res = json.loads(out.read_text())
    assert [r["avatars"] for r in res["rows"]] == [1, 2, 3]
    assert all(r["host_tick_ms_p50"] > 0 and r["host_frames_per_s"] > 0 for r in res["rows"])
    assert all(r["covered_fraction"] > 0.1 for r in res["rows"])  # the heads are in view
    assert res["gaussians"] > 10000  # the shipped avatar, not a toy


def test_gsplat_capacity_path_renders_every_avatar_in_one_call_per_tick(monkeypatch):
    calls = []

    def counted(*args, **kw):
        calls.append(tuple(args[0].shape[:-1]))
        return fake_rasterization(*args, **kw)
    monkeypatch.setitem(sys.modules, "gsplat", types.SimpleNamespace(rasterization=counted))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    _, _, cams = bench_render.capacity_setup("default_older", 12, 2)
    assert not np.allclose(cams[0].world_to_cam, cams[1].world_to_cam)  # each avatar has its own view
    v, f = icosphere(2, 0.1)  # a small avatar in front of those cameras keeps the dense stand-in quick
    target = cams[0].position + 0.62 * cams[0].world_to_cam[2, :3]  # what the cameras look at
    avatar = GaussianAvatar.init_from_mesh(v, f, per_triangle=1)
    verts = (v[None] + target[None, None]).astype(np.float32)
    res = bench_render.capacity_sweep(avatar, verts, cams, "gsplat", ticks=1, rate=25.0, device="cpu")
    n = len(avatar)
    # counts 1 and 2, modes host and device, 3 warm-up ticks + 1 timed each: one batched call per tick
    assert calls == [(1, n)] * 8 + [(2, n)] * 8
    assert res["rows"][1]["device_frames_per_s"] > 0 and res["device_frames_per_s_at_max"] > 0
    assert res["gaussians"] == len(avatar) and all(r["covered_fraction"] > 0.05 for r in res["rows"])
