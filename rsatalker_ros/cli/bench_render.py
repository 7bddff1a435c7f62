"""Benchmark the live CPU renderer: mesh -> Gaussians (numba binding) -> 8-bit RGB image, per frame.

    python -m rsatalker_ros.cli.bench_render [--size 512] [--counts 20000 50000] [--frames 100] [--threads 2]

Uses the default head (``load_head("default_older")``) posed by a short synthetic motion clip (jaw, neck and a few
ARKit expressions); the posed meshes are computed before timing (that is the motion model's cost, not the
renderer's). Every timed frame runs ``FastBinder(avatar)(vertices)`` then ``render_uint8``; the figures are the
wall-clock frame rate and the CPU time per frame summed over threads (less sensitive to other processes sharing
the cores). Also renders one frame with the torch reference at the same size and prints the speed ratio and the
mean absolute difference.

Old vs new rasteriser (``--baseline REF``, default: the last revision before issue #9's rasteriser work): loads ``render/cpu_tiles.py`` as it is at git revision REF
into a throwaway module and times both rasterisers in the same run, frames interleaved, on the shipped avatars
(every level found) and the benchmark avatar of the first count: median time per frame, the ratio, and each
one's mean difference from the torch reference (in 1/255 units, on a 128 x 128 frame of the same camera: the dense
reference takes minutes at 512 x 512 on a busy core). ``--baseline ""`` skips it. Prints the machine load next to the figures. On a busy machine, OpenMP threads spin
while they wait; ``OMP_WAIT_POLICY=PASSIVE`` or ``--threading-layer workqueue`` lowers that cost.
"""

import argparse
import math
import os
import time
from pathlib import Path

import numba
import numpy as np
import torch
from tqdm import tqdm

from ..avatar.gaussians import FastBinder, GaussianAvatar, bind, thin_to
from ..render.api import render, render_uint8
from ..render.camera import Camera, stereo_pair


def _head():
    """(name, faces [F,3], posed vertices [T,V,3] float32) of the default head, or an ellipsoid when missing."""
    try:
        from ..face.head_model import load_head
        head = load_head("default_older")
        T = 25
        t = torch.linspace(0, 2 * math.pi, T)
        motion = torch.zeros(T, 64)
        motion[:, 52] = 0.15 * (1 + torch.sin(3 * t))      # jaw open
        motion[:, 56] = 0.12 * torch.sin(t)                 # neck yaw
        motion[:, 55] = 0.05 * torch.sin(2 * t)             # neck pitch
        motion[:, 20:30] = 0.4 * (1 + torch.sin(t))[:, None] / 2  # some expressions
        with torch.no_grad():
            verts = head.from_motion(motion).float().numpy()
        return "default_older", head.faces.numpy(), verts
    except Exception as e:  # noqa: BLE001 - the benchmark still runs without the head model
        print(f"default head unavailable ({e}); using an ellipsoid of 5120 triangles")
        from ..avatar.meshes import icosphere
        v, f = icosphere(4, 1.0)
        v = v * np.array([0.09, 0.12, 0.1], np.float32)
        T = 25
        verts = np.stack([v * (1 + 0.03 * math.sin(2 * math.pi * i / T)) for i in range(T)]).astype(np.float32)
        return "ellipsoid", f, verts


def benchmark_avatar(faces, vertices, count: int, seed: int = 0) -> GaussianAvatar:
    """An untrained avatar (skin-coloured, init_from_mesh) with exactly ``count`` Gaussians, every triangle
    keeping at least one."""
    F = faces.shape[0]
    rng = np.random.default_rng(seed)
    colors = np.clip(np.array([0.85, 0.64, 0.52]) + rng.normal(scale=0.06, size=(F, 3)), 0, 1)
    av = GaussianAvatar.init_from_mesh(vertices, faces, per_triangle=max(1, math.ceil(count / F)), colors=colors,
                                       seed=seed)
    return thin_to(av, count, seed)


def _save_examples(folder: Path, binder: FastBinder, verts, cam: Camera) -> None:
    """render_head.png (three poses), render_stereo.png (left | right eye, 63 mm apart), render_depth.png."""
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    frames = [render_uint8(binder(verts[i]), cam, background=(1, 1, 1)) for i in (0, len(verts) // 4, len(verts) // 2)]
    Image.fromarray(np.concatenate(frames, 1)).save(folder / "render_head.png")
    left, right = stereo_pair(cam, 0.063)
    g = binder(verts[0])
    pair = [render_uint8(g, c, background=(1, 1, 1)) for c in (left, right)]
    Image.fromarray(np.concatenate(pair, 1)).save(folder / "render_stereo.png")
    res = render(g, cam, backend="cpu")
    d = res.depth.numpy()
    m = res.alpha.numpy() > 0.5
    lo, hi = d[m].min(), d[m].max()
    img = np.where(m, 255 * (1 - (d - lo) / max(hi - lo, 1e-6)), 0).astype(np.uint8)
    Image.fromarray(img).save(folder / "render_depth.png")
    print(f"example images written to {folder}/render_{{head,stereo,depth}}.png")


BASELINE = "73e393002734d0fd470722dcdae3bd99c8685812"  # the rasteriser before issue #9


def _baseline_rasteriser(ref: str):
    """render_cpu of ``render/cpu_tiles.py`` at git revision ``ref`` (loaded from ``git show`` into a module), or None
    with the reason printed (no git, no such revision)."""
    import importlib.util
    import subprocess
    import tempfile
    root = Path(__file__).resolve().parents[2]
    try:
        src = subprocess.run(["git", "-C", str(root), "show", f"{ref}:rsatalker_ros/render/cpu_tiles.py"],
                             capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as e:
        print(f"baseline rasteriser at {ref!r} unavailable ({e}); old-vs-new comparison skipped")
        return None
    folder = Path(tempfile.mkdtemp(prefix="rsatalker_baseline_"))
    path = folder / "cpu_tiles_baseline.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("cpu_tiles_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.render_cpu


def _compare_rasterisers(ref: str, subjects, verts, cam: Camera, frames: int) -> None:
    """Old (git ``ref``) vs new ``render_cpu`` on each (name, avatar): median ms per 8-bit frame, interleaved."""
    from ..render.api import _cpu_inputs
    from ..render.cpu_tiles import render_cpu
    old = _baseline_rasteriser(ref)
    if old is None:
        return
    bg = np.ones(3, np.float32)
    print(f"rasteriser {ref} (old) vs this checkout (new), {cam.width}x{cam.height}, 8-bit frames, interleaved:")
    ratios = []
    for name, av in subjects:
        binder = FastBinder(av)
        inputs = [_cpu_inputs(binder(verts[i % len(verts)])) for i in range(min(frames, len(verts)))]
        small = cam.with_size(128, 128)
        with torch.no_grad():
            ref_img = render(bind(av, torch.as_tensor(verts[0])), small, background=bg, backend="torch").image.numpy()
        diffs = [float(np.abs(f(*inputs[0], small, bg, uint8=True) / 255.0 - ref_img.clip(0, 1)).mean()) * 255
                 for f in (old, render_cpu)]
        t_old, t_new = [], []
        for i in tqdm(range(frames), desc=f"old vs new {name}", leave=False):
            x = inputs[i % len(inputs)]
            for f, out in ((old, t_old), (render_cpu, t_new)):
                t0 = time.perf_counter()
                f(*x, cam, bg, uint8=True)
                out.append(time.perf_counter() - t0)
        m_old, m_new = 1e3 * float(np.median(t_old)), 1e3 * float(np.median(t_new))
        ratios.append(m_old / m_new)
        print(f"  {name:28s} {len(av):6d} Gaussians: old {m_old:6.2f} ms, new {m_new:6.2f} ms -> {m_old / m_new:.2f}x; "
              f"mean difference from the torch reference old {diffs[0]:.3f}/255, new {diffs[1]:.3f}/255")
    print(f"  speed-up new / old: {', '.join(f'{r:.2f}x' for r in ratios)} (median {np.median(ratios):.2f}x)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512, help="image width = height in pixels")
    ap.add_argument("--counts", type=int, nargs="+", default=[20000, 50000], help="Gaussian counts to time")
    ap.add_argument("--frames", type=int, default=100, help="timed frames per count")
    ap.add_argument("--threads", type=int, default=2, help="numba threads")
    ap.add_argument("--threading-layer", default="default", choices=["default", "omp", "workqueue", "tbb"],
                    help="numba threading layer (set before the first parallel call)")
    ap.add_argument("--no-reference", action="store_true", help="skip the torch reference frame")
    ap.add_argument("--save", type=str, default="", help="folder for example images (render_*.png)")
    ap.add_argument("--baseline", default=BASELINE, help="git revision whose rasteriser is timed against this one "
                    "(old vs new, same run; default: the one before issue #9); '' skips")
    ap.add_argument("--compare-frames", type=int, default=30, help="interleaved frames per avatar, old vs new")
    args = ap.parse_args(argv)
    numba.config.THREADING_LAYER = args.threading_layer

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(args.threads)
    name, faces, verts = _head()
    lo, hi = verts[0].min(0), verts[0].max(0)
    centre = (lo + hi) / 2
    cam = Camera.look_at(eye=centre + np.array([0.0, 0.0, 0.62]), target=centre, up=[0, 1, 0],
                         width=args.size, height=args.size, fov_y_deg=30.0)
    print(f"head {name}: {verts.shape[1]} vertices, {faces.shape[0]} triangles; image {args.size}x{args.size}; "
          f"numba threads {numba.get_num_threads()}, cpus {os.cpu_count()}, "
          f"load average before {os.getloadavg()[0]:.2f}")
    results = {}
    for count in args.counts:
        av = benchmark_avatar(faces, verts[0], count)
        binder = FastBinder(av)
        for i in range(3):  # compile / warm up
            render_uint8(binder(verts[i % len(verts)]), cam)
        t_bind, t_total = [], []
        img = None
        cpu0 = time.process_time()
        for i in tqdm(range(args.frames), desc=f"{count} Gaussians", leave=False):
            v = verts[i % len(verts)]
            t0 = time.perf_counter()
            g = binder(v)
            t1 = time.perf_counter()
            img = render_uint8(g, cam)
            t2 = time.perf_counter()
            t_bind.append(t1 - t0)
            t_total.append(t2 - t0)
        cpu_ms = (time.process_time() - cpu0) * 1e3 / args.frames
        tt = np.array(t_total) * 1e3
        cover = float((img.astype(np.int32).sum(-1) > 0).mean())
        results[count] = (av, binder, float(np.median(tt)))
        print(f"{count:6d} Gaussians: {1e3 / tt.mean():6.1f} frames/s wall clock (mean {tt.mean():.2f} ms, median "
              f"{np.median(tt):.2f} ms, p90 {np.percentile(tt, 90):.2f} ms; binding {1e3 * np.mean(t_bind):.2f} ms); "
              f"CPU time {cpu_ms:.2f} ms/frame over all threads; head covers {100 * cover:.0f}% of the image")
    print(f"load average after: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores; numba threading "
          f"layer {numba.threading_layer()}")
    if not args.no_reference:
        count = args.counts[0]
        av, binder, med = results[count]
        v = verts[0]
        t0 = time.perf_counter()
        with torch.no_grad():
            ref = render(bind(av, torch.as_tensor(v)), cam, backend="torch")
        t_ref = time.perf_counter() - t0
        cpu = render(binder(v), cam, backend="cpu")
        mae = float((cpu.image - ref.image).abs().mean())
        print(f"torch reference, {count} Gaussians: {t_ref * 1e3:.0f} ms per frame -> the CPU renderer is "
              f"{t_ref * 1e3 / med:.0f}x faster; CPU vs reference mean abs error {mae * 255:.2e}/255")
    if args.baseline:
        from ..avatar.levels import available_levels, load_level
        subjects = []
        if name != "ellipsoid":
            for head in ("default_older", "default_younger"):
                for level in available_levels(head):
                    subjects.append((f"{head} {level}", load_level(head, level, faces=faces)))
        subjects.append((f"benchmark avatar {args.counts[0]}", results[args.counts[0]][0]))
        _compare_rasterisers(args.baseline, subjects, verts, cam, args.compare_frames)
    if args.save:
        _save_examples(Path(args.save), results[args.counts[0]][1], verts, cam)
    if torch.cuda.is_available():
        print("CUDA is available: run scripts/gpu_check.py for the gsplat comparison")


if __name__ == "__main__":
    main()
