"""scripts/gpu_check.py's CPU dry run: every section of the GPU check (agreement, single stream, capacity, stage 3
through the documented train_avatar command with its parallel view drawing) runs at toy size on the CPU and writes
its figures, so the one GPU run a session gets is not spent on a broken script. It proves the plumbing only: gsplat
itself is absent here (the torch reference stands in for it)."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_writes_every_section(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    sections = ["agreement", "single_stream", "capacity", "stage3"]  # cuda_tests: a pytest subprocess, skipped
    rc = gpu_check.main(["--dry-run", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"),
                         "--sections", *sections])
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert rc == 0 and report["ok"] and report["dry_run"], report
    a = report["agreement"]
    assert a["ok"] and max(a["batched_mae255_per_scene"]) < 1.0
    assert max(a["default_older_fused_bind_max_abs_diff_means_quats"]) < 1e-4
    assert "cuda_tests" not in report
    s = report["single_stream"]
    assert s["bind_render_frames_per_s"] > 0 and s["fused_eager_render_frames_per_s"] > 0
    c = report["capacity"]
    assert [r["avatars"] for r in c["rows"]] == [1, 2] and c["rows"][0]["covered_fraction"] > 0.05
    st = report["stage3"]["default_older"]
    assert st["rc"] == 0 and st["image_size"] == 32 and st["gaussians"] >= 20000 and st["heldout_psnr"] > 5
    assert (tmp_path / "out" / "stage3_default_older_heldout.png").is_file()
    assert (tmp_path / "out" / "stage3_default_older.safetensors").is_file()
