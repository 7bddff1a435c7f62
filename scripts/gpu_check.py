#!/usr/bin/env python3
"""GPU check (issue #13): everything the GPU path promises, in one run, with the figures in one JSON file.

On a CUDA machine with gsplat (README "GPU path" says how gsplat travels to the bare device machine as a wheel):
    TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 python3 scripts/gpu_check.py --out $OUT      # < 8 min on an H200
Here, without a GPU, the same sections at toy sizes on the CPU (plumbing only; no gsplat; the torch reference
stands in for gsplat in the agreement section and the CPU renderer in the capacity section):
    python scripts/gpu_check.py --dry-run --out /tmp/gpu_check

Sections, in order (each adds to <out>/gpu_check.json as soon as it finishes; a failing section is recorded and
the next one still runs):
  agreement      gsplat vs the CPU renderer: random scenes (SH 0 and 3), the shipped default_older avatar at
                 --size, one batched call of three different scenes; the fused bind (eager and torch.compile'd)
                 vs bind(). Mean abs difference in 1/255 units must stay below 1.
  cuda_tests     the test suite's CUDA-only tests (gsplat vs CPU; stage 3 densifying and filling on CUDA).
  single_stream  one stream's bind + render frames/s at --size with the shipped avatar (image left on the GPU):
                 bind() + render() (the old path), TorchBinder eager, TorchBinder compiled, and gsplat's
                 rasterization alone with prebuilt tensors (the floor). Target >= 1000 frames/s.
  capacity       rsatalker-bench-render's capacity sweep (--capacity-counts): avatars sustained at 25 Hz with
                 the images copied to host memory, and frames/s with them left on the GPU. Target >= 500.
  stage3         per shipped head, the documented command
                     python -m rsatalker_ros.cli.train_avatar --head HEAD --config config/train_stage3_gpu.yaml
                 (512 px, densification, final fill): training seconds and held-out PSNR (targets <= 120 s,
                 >= 35 dB); the held-out comparison PNG and the avatar file are copied to --out. A head is skipped
                 (and says so) when the remaining --budget-s could not hold it.
Exit status: 0 when every section ran and agreed, 1 otherwise (the JSON says which).
"""

import argparse
import json
import shutil
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rsatalker_ros.avatar.gaussians import TorchBinder, WorldGaussians, bind  # noqa: E402
from rsatalker_ros.cli import bench_render  # noqa: E402
from rsatalker_ros.render.api import render  # noqa: E402
from rsatalker_ros.render.batch import camera_batch, render_batch  # noqa: E402
from rsatalker_ros.render.camera import Camera  # noqa: E402

HEADS = ("default_older", "default_younger")
STAGE3_SECONDS = 150  # what one head's stage-3 section needs at most on the GPU (views + 2 min training + eval)


def random_scene(seed: int, n: int, sh_degree: int) -> WorldGaussians:
    rng = np.random.default_rng(seed)
    sh = rng.normal(scale=0.4, size=(n, (sh_degree + 1) ** 2, 3))
    sh[:, 0] = (rng.uniform(0, 1, (n, 3)) - 0.5) / 0.28209479
    f = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    return WorldGaussians(means=f(rng.uniform([-0.25, -0.2, -0.2], [0.25, 0.2, 0.2], (n, 3))),
                          scales=f(np.exp(rng.uniform(np.log(0.004), np.log(0.06), (n, 3)))),
                          quats=f(rng.normal(size=(n, 4))), opacities=f(rng.uniform(0.02, 1.0, n)), sh=f(sh))


def moved(g: WorldGaussians, device) -> WorldGaussians:
    return WorldGaussians(*(t.to(device).contiguous() for t in (g.means, g.scales, g.quats, g.opacities, g.sh)))


def mae255(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float().cpu() - b.float().cpu()).abs().mean()) * 255.0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class Check:
    """Settings of one run: the real GPU run or the CPU dry run."""

    def __init__(self, args):
        self.dry = args.dry_run
        self.device = torch.device("cpu" if self.dry else "cuda")
        self.renderer = "torch" if self.dry else "gsplat"  # the backend under test (torch stands in on CPU)
        self.size = 32 if self.dry else args.size
        self.iters = 3 if self.dry else args.iters
        self.out = Path(args.out)
        self.t0 = time.perf_counter()
        self.budget = args.budget_s
        self.args = args
        self.report = {}
        self.path = self.out / "gpu_check.json"

    def save(self) -> None:
        """Write what is known so far (a run cut short still leaves its figures)."""
        self.report["elapsed_seconds"] = time.perf_counter() - self.t0
        self.path.write_text(json.dumps(self.report, indent=2, default=str))

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.t0)


def shipped(name: str, check: Check, size: int):
    """(avatar, posed vertices [T, V, 3] on the device, a few cameras at ``size``) of a shipped avatar."""
    avatar, verts, cams = bench_render.capacity_setup(name, size, 3)
    return avatar, torch.from_numpy(verts).to(check.device), cams


def section_agreement(check: Check) -> dict:
    out, ok = {}, True
    cam = Camera.look_at([0.15, 0.1, 0.9], [0, 0, 0], [0, 1, 0], 160 if not check.dry else 48,
                         128 if not check.dry else 40, 40)
    bg = (0.3, 0.4, 0.5)
    for seed, degree in ((0, 0), (1, 3)):
        g = random_scene(seed, 2000 if not check.dry else 300, degree)
        t0 = time.perf_counter()
        gpu = render(moved(g, check.device), cam, background=bg, backend=check.renderer)
        sync(check.device)
        first = time.perf_counter() - t0
        cpu = render(g, cam, background=bg, backend="cpu")
        e = [mae255(gpu.image, cpu.image), mae255(gpu.alpha, cpu.alpha)]
        out[f"random_sh{degree}_mae255_image_alpha"] = e
        if seed == 0:
            out["first_call_seconds_incl_compile"] = first
        ok &= max(e) < 1.0
        print(f"random scene, SH degree {degree}: {check.renderer} vs CPU mean abs diff image {e[0]:.3f}/255, "
              f"alpha {e[1]:.3f}/255 (first call {first:.1f} s, includes any CUDA compilation)")
    scenes, cams, singles = [], [], []
    for name in HEADS[:1] if check.dry else HEADS:
        avatar, verts, hcams = shipped(name, check, check.size)
        av_dev = _avatar_on(avatar, check.device)
        with torch.no_grad():
            ref = bind(av_dev, verts[0])
            eager = TorchBinder(avatar, check.device, compile=False)(verts[0])
        out[f"{name}_fused_bind_max_abs_diff_means_quats"] = [float((eager.means - ref.means).abs().max()),
                                                              float((eager.quats - ref.quats).abs().max())]
        if check.dry:  # the dense torch reference is slow: every 20th Gaussian is enough to check the plumbing
            ref = WorldGaussians(*(t[::20] for t in (ref.means, ref.scales, ref.quats, ref.opacities, ref.sh)))
            e_img = mae255(render(ref, hcams[1], backend=check.renderer).image,
                           render(moved(ref, "cpu"), hcams[1], backend="cpu").image)
        out[f"{name}_mae255_image"] = e_img
        ok &= e_img < 1.0 and max(out[f"{name}_fused_bind_max_abs_diff_means_quats"]) < 1e-4
        if check.device.type == "cuda" and name == HEADS[0]:  # one compile is enough (they take seconds)
            try:  # torch.compile is optional: its failure is recorded, not fatal
                compiled = TorchBinder(avatar, check.device, compile=True)(verts[0])
                d = [float((compiled.means - ref.means).abs().max()),
                     float((compiled.quats - ref.quats).abs().max())]
                out[f"{name}_compiled_bind_max_abs_diff_means_quats"] = d
                ok &= max(d) < 1e-4
            except Exception as err:  # noqa: BLE001
                out["compile_error"] = f"{type(err).__name__}: {err}"
        print(f"{name} ({len(avatar)} Gaussians) at {check.size} px: {check.renderer} vs CPU {e_img:.3f}/255; "
              f"fused bind vs bind max diff {out[f'{name}_fused_bind_max_abs_diff_means_quats']}")
        scenes.append(ref)
        cams.append(hcams[1])
        singles.append(ref)
    for seed in (2, 3)[:3 - len(scenes)]:
        rnd = random_scene(seed, 3000 if not check.dry else 300, 1)
        scenes.append(moved(rnd, check.device))
        singles.append(rnd)
        cams.append(Camera.look_at([0.1, 0.0, 0.9], [0, 0, 0], [0, 1, 0], check.size, check.size, 40))
    bgs = np.array([[1, 1, 1], [0, 0, 0], [0.2, 0.3, 0.4]], np.float32)
    with torch.no_grad():
        batch = render_batch(scenes, camera_batch(cams, bgs, check.device), backend=check.renderer)
    errs = [mae255(batch.images[i], render(moved(g, "cpu"), c, background=bgs[i], backend="cpu").image)
            for i, (g, c) in enumerate(zip(singles, cams))]
    out["batched_mae255_per_scene"] = errs
    ok &= max(errs) < 1.0
    print(f"one batched call of {len(scenes)} different scenes vs CPU one by one: {[f'{e:.3f}' for e in errs]}/255")
    out["ok"] = bool(ok)
    return out


def _avatar_on(avatar, device):
    import dataclasses
    return dataclasses.replace(avatar, **{f.name: getattr(avatar, f.name).to(device)
                                          for f in dataclasses.fields(avatar) if f.name != "head"})


def section_single_stream(check: Check) -> dict:
    avatar, verts, cams = shipped("default_older", check, check.size)
    cam = cams[1]
    av_dev = _avatar_on(avatar, check.device)
    out = {"gaussians": len(avatar), "size": check.size}
    paths = {"bind_render": lambda v: bind(av_dev, v),
             "fused_eager_render": TorchBinder(avatar, check.device, compile=False)}
    if check.device.type == "cuda":
        t0 = time.perf_counter()
        try:  # torch.compile is optional: its failure is recorded, not fatal
            compiled = TorchBinder(avatar, check.device, compile=True)
            compiled(verts[0])
            out["compile_seconds"] = time.perf_counter() - t0
            paths["fused_compiled_render"] = compiled
        except Exception as err:  # noqa: BLE001
            out["compile_error"] = f"{type(err).__name__}: {err}"
    backend = check.renderer if check.renderer == "gsplat" else "cpu"
    with torch.no_grad():
        for name, fn in paths.items():
            out[f"{name}_frames_per_s"] = bench_render.single_stream_fps(fn, cam, verts, check.iters, backend)
            print(f"single stream, {name}: {out[f'{name}_frames_per_s']:.0f} frames/s ({len(avatar)} Gaussians, "
                  f"{check.size} px, image left on the {check.device.type})")
        if check.renderer == "gsplat":
            from gsplat import rasterization

            from rsatalker_ros.render.gsplat_backend import background_tensor, camera_tensors
            g = paths["fused_eager_render"](verts[0])
            view, K = camera_tensors(cam, check.device)
            bg = background_tensor((0, 0, 0), check.device)[None]
            args = (g.means, g.quats, g.scales, g.opacities, g.sh, view[None], K[None], cam.width, cam.height)
            kw = dict(sh_degree=g.sh_degree, packed=False, backgrounds=bg, render_mode="RGB+ED")
            for _ in range(5):
                rasterization(*args, **kw)
            sync(check.device)
            t0 = time.perf_counter()
            for _ in range(check.iters):
                rasterization(*args, **kw)
            sync(check.device)
            out["rasterization_only_frames_per_s"] = check.iters / (time.perf_counter() - t0)
            print(f"gsplat rasterization alone, prebuilt tensors: {out['rasterization_only_frames_per_s']:.0f} "
                  f"frames/s")
    best = max(v for k, v in out.items() if k.startswith("fused") and k.endswith("frames_per_s"))
    out["best_fused_frames_per_s"] = best
    out["target_1000_met"] = bool(best >= 1000) if check.device.type == "cuda" else None
    return out


def section_capacity(check: Check) -> dict:
    counts = [1, 2] if check.dry else check.args.capacity_counts
    backend = "gsplat" if check.renderer == "gsplat" else "cpu"
    avatar, verts, cams = bench_render.capacity_setup("default_older", check.size, max(counts))
    res = bench_render.capacity_sweep(avatar, verts, cams, backend, 2 if check.dry else check.args.ticks, 25.0,
                                      compile_bind=False, counts=counts)
    res["target_500_met"] = bool(res["avatars_at_25hz_measured"] >= 500) if backend == "gsplat" else None
    return res


def section_stage3(check: Check) -> dict:
    import yaml

    from rsatalker_ros.cli import train_avatar
    cfg = yaml.safe_load((ROOT / "config" / "train_stage3_gpu.yaml").read_text())
    if check.dry:  # the same command on the CPU at toy size: the fast CPU renderer, a few steps, two processes
        cfg["stage3"].update(renderer="fast", device="cpu", iterations=3, densify_from=1, densify_until=3,
                             densify_every=2, threads=1)
        cfg["data"].update(n_views=4, n_eval=2, size=32, supersample=1, texture_size=64, workers=2)
    elif check.args.stage3_iterations:
        cfg["stage3"]["iterations"] = check.args.stage3_iterations
    work_root = Path(check.args.work)
    work_root.mkdir(parents=True, exist_ok=True)
    cfg_path = work_root / "train_stage3_gpu_check.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    out = {"config": cfg}
    heads = HEADS[:1] if check.dry else HEADS
    for head in heads:
        if not check.dry and check.left() < STAGE3_SECONDS:
            out[head] = {"skipped": f"only {check.left():.0f} s of the {check.budget:.0f} s budget left"}
            print(f"stage 3 {head}: skipped, {out[head]['skipped']}")
            continue
        work = work_root / f"avatar_gpu_{head}"
        t0 = time.perf_counter()
        rc = train_avatar.main(["--head", head, "--config", str(cfg_path), "--work", str(work),
                                "--out", str(work / f"{head}.safetensors")])
        total = time.perf_counter() - t0
        m = json.loads((work / "metrics.json").read_text())
        h = m.get("heldout", {})
        out[head] = {"rc": rc, "train_seconds": m["train_seconds"], "total_seconds": total,
                     "gaussians": m["gaussians"], "heldout_psnr": h.get("psnr"), "heldout_ssim": h.get("ssim"),
                     "heldout_psnr_head": h.get("psnr_head"), "image_size": m["image_size"],
                     "iterations": m["iterations"]}
        if not check.dry:
            out[head]["targets_met"] = bool(m["train_seconds"] <= 120 and (h.get("psnr") or 0) >= 35)
        shutil.copy(work / "heldout.png", check.out / f"stage3_{head}_heldout.png")
        shutil.copy(work / f"{head}.safetensors", check.out / f"stage3_{head}.safetensors")
        print(f"stage 3 {head}: {m['train_seconds']} s training ({total:.0f} s with views and evaluation), "
              f"held-out PSNR {h.get('psnr', float('nan')):.2f} dB, {m['gaussians']} Gaussians")
        check.report["stage3"] = out
        check.save()
    return out


CUDA_TESTS = ["test/test_render_backends.py::test_gsplat_matches_cpu",
              "test/test_train_stage3.py::test_stage3_densifies_and_fills_on_cuda"]


def section_cuda_tests(check: Check) -> dict:
    """The test suite's CUDA-only tests (skipped on CPU machines), in a pytest subprocess."""
    import subprocess
    tests = CUDA_TESTS
    if check.dry:  # no CUDA: a quick CPU test stands in, to check the subprocess plumbing
        tests = ["test/test_train_stage3_densify.py::test_fill_to_count_reaches_target_and_keeps_binding"]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    tail = (run.stdout + run.stderr)[-2000:]
    print(tail)
    return {"tests": tests, "rc": run.returncode, "ok": run.returncode == 0 and "skipped" not in tail,
            "output_tail": tail}


SECTIONS = {"agreement": section_agreement, "cuda_tests": section_cuda_tests, "single_stream": section_single_stream,
            "capacity": section_capacity, "stage3": section_stage3}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/gpu_check", help="folder for gpu_check.json, PNGs and avatars")
    ap.add_argument("--work", default="/tmp/gpu_check_work", help="folder for stage-3 views and checkpoints")
    ap.add_argument("--dry-run", action="store_true", help="CPU, toy sizes: checks the script, not the GPU")
    ap.add_argument("--size", type=int, default=512, help="image width = height for the speed sections")
    ap.add_argument("--iters", type=int, default=500, help="timed frames of the single-stream section")
    ap.add_argument("--ticks", type=int, default=20, help="timed ticks per avatar count (capacity)")
    ap.add_argument("--capacity-counts", type=int, nargs="+", default=[1, 64, 256, 512, 768, 1024])
    ap.add_argument("--stage3-iterations", type=int, default=0, help="override the GPU config's iterations")
    ap.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS))
    ap.add_argument("--budget-s", type=float, default=450.0, help="skip stage-3 heads that would end past this")
    args = ap.parse_args(argv)
    check = Check(args)
    check.out.mkdir(parents=True, exist_ok=True)
    if not check.dry and not torch.cuda.is_available():
        print("no CUDA device: run with --dry-run for the CPU plumbing check")
        return 2
    report = check.report
    report.update(dry_run=check.dry, torch=torch.__version__, argv=sys.argv[1:] if argv is None else argv)
    if not check.dry:
        import gsplat
        report.update(device=torch.cuda.get_device_name(0), cuda=torch.version.cuda, gsplat=gsplat.__version__)
        print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {report['device']}, gsplat {gsplat.__version__}")
    ok = True
    for name in args.sections:
        t0 = time.perf_counter()
        try:
            report[name] = SECTIONS[name](check)
            ok &= report[name].get("ok", True)
        except Exception as err:  # noqa: BLE001 - record it and run the next section
            traceback.print_exc()
            report[name] = {"error": f"{type(err).__name__}: {err}"}
            ok = False
        report[name]["seconds"] = time.perf_counter() - t0
        check.save()
        print(f"[{report['elapsed_seconds']:.0f} s] section {name} done in {report[name]['seconds']:.0f} s")
    report["ok"] = bool(ok)
    check.save()
    print(f"figures in {check.path}; {'OK' if ok else 'SOMETHING FAILED: see the JSON'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
