"""Benchmark the live CPU renderer: mesh -> Gaussians (numba binding) -> 8-bit RGB image, per frame.

    python -m rsatalker_ros.cli.bench_render [--size 512] [--counts 20000 50000] [--frames 100] [--threads 2]
    python -m rsatalker_ros.cli.bench_render --backend gsplat --avatars 500    # capacity: see the GPU section

Uses the default head (``load_head("default_older")``) posed by a short synthetic motion clip (jaw, neck and a few
ARKit expressions); the posed meshes are computed before timing (that is the motion model's cost, not the
renderer's). Every timed frame runs ``FastBinder(avatar)(vertices)`` then ``render_uint8``; the figures are the
wall-clock frame rate and the CPU time per frame summed over threads (less sensitive to other processes sharing
the cores). Also renders one frame with the torch reference at the same size and prints the speed ratio and the
mean absolute difference.

Old vs new rasteriser (``--baseline REF``, default: the last revision before issue #9's rasteriser work): loads
``render/cpu_tiles.py`` as it is at git revision REF into a throwaway module and times both rasterisers (and this
checkout's numba fallback, ``render_cpu(use_c=False)``) in the same run, frames interleaved, on the shipped avatars
(every level found; ``--compare-only`` picks some) and the benchmark avatar of the first count, on one thread
(the renderer node's ``render_threads``, whatever ``--threads`` is): median wall-clock and CPU time per frame (CPU
time is less sensitive to other processes), the ratios, and each
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
    """Old (git ``ref``) vs new ``render_cpu`` (and the new one's numba fallback) on each (name, avatar): median ms
    per 8-bit frame, interleaved, on one thread: the live path as the renderer node runs it (``render_threads`` 1:
    one renderer per participant, each on its own core), whatever ``--threads`` the frame-rate figures above used
    (with more threads the CPU time also counts OpenMP threads spinning while they wait)."""
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        _compare_one_thread(ref, subjects, verts, cam, frames)
    finally:
        numba.set_num_threads(previous)


def _compare_one_thread(ref: str, subjects, verts, cam: Camera, frames: int) -> None:
    from functools import partial

    from ..render import raster_c
    from ..render.api import _cpu_inputs
    from ..render.cpu_tiles import render_cpu
    old = _baseline_rasteriser(ref)
    if old is None:
        return
    lib = raster_c.load()
    path = f"C++ kernel, {lib.rs_isa().decode()}" if lib is not None else f"numba: {raster_c.reason()}"
    fallback = partial(render_cpu, use_c=False)
    rasterisers = (old, render_cpu, fallback)
    bg = np.ones(3, np.float32)
    print(f"rasteriser {ref} (old) vs this checkout (new: {path}; and its numba fallback), {cam.width}x{cam.height}, "
          "8-bit frames, one thread, interleaved:")
    ratios, cpu_ratios = [], []
    for name, av in subjects:
        binder = FastBinder(av)
        inputs = [_cpu_inputs(binder(verts[i % len(verts)])) for i in range(min(frames, len(verts)))]
        small = cam.with_size(128, 128)
        with torch.no_grad():
            ref_img = render(bind(av, torch.as_tensor(verts[0])), small, background=bg, backend="torch").image.numpy()
        errors = [np.abs(f(*inputs[0], small, bg, uint8=True) / 255.0 - ref_img.clip(0, 1)) * 255 for f in rasterisers]
        diffs, maxes = [float(e.mean()) for e in errors], [float(e.max()) for e in errors]
        for f in rasterisers:  # compiled, warm
            f(*inputs[0], cam, bg, uint8=True)
        wall, cpu = [[] for _ in rasterisers], [[] for _ in rasterisers]
        for i in tqdm(range(frames), desc=f"old vs new {name}", leave=False):
            x = inputs[i % len(inputs)]
            for f, out, c_out in zip(rasterisers, wall, cpu):
                c0, t0 = time.process_time(), time.perf_counter()
                f(*x, cam, bg, uint8=True)
                out.append(time.perf_counter() - t0)
                c_out.append(time.process_time() - c0)
        (m_old, m_new, m_fb), (p_old, p_new, p_fb) = ([1e3 * float(np.median(t)) for t in ts] for ts in (wall, cpu))
        ratios.append(m_old / m_new)
        cpu_ratios.append(p_old / p_new)
        print(f"  {name:28s} {len(av):6d} Gaussians: old {m_old:6.2f} ms, new {m_new:6.2f} ms -> {m_old / m_new:.2f}x; "
              f"CPU time old {p_old:6.2f} ms, new {p_new:6.2f} ms -> {p_old / p_new:.2f}x (numba fallback "
              f"{p_fb:6.2f} ms -> {p_old / p_fb:.2f}x); mean difference from the torch reference old "
              f"{diffs[0]:.3f}/255, new {diffs[1]:.3f}/255, fallback {diffs[2]:.3f}/255 (max {maxes[0]:.1f}, "
              f"{maxes[1]:.1f}, {maxes[2]:.1f})")
    print(f"  speed-up new / old, wall clock: {', '.join(f'{r:.2f}x' for r in ratios)} (median {np.median(ratios):.2f}x);"
          f" CPU time: {', '.join(f'{r:.2f}x' for r in cpu_ratios)} (median {np.median(cpu_ratios):.2f}x); load "
          f"average now {os.getloadavg()[0]:.2f}")


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
    add_capacity_arguments(ap)
    ap.add_argument("--baseline", default=BASELINE, help="git revision whose rasteriser is timed against this one "
                    "(old vs new, same run; default: the one before issue #9); '' skips")
    ap.add_argument("--compare-frames", type=int, default=30, help="interleaved frames per avatar, old vs new")
    ap.add_argument("--compare-only", default="", help="old vs new only on the avatars whose name contains this "
                    "text (e.g. 'default_older full'); default: every shipped level and the benchmark avatar")
    args = ap.parse_args(argv)
    if args.avatars:
        capacity_main(args)
        return
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
        subjects = [(n, av) for n, av in subjects if args.compare_only in n]
        if not subjects:
            raise SystemExit(f"--compare-only {args.compare_only!r} matches no avatar; names are 'default_older "
                             f"full', 'default_younger 6k', 'benchmark avatar {args.counts[0]}', ...")
        _compare_rasterisers(args.baseline, subjects, verts, cam, args.compare_frames)
    if args.save:
        _save_examples(Path(args.save), results[args.counts[0]][1], verts, cam)
    if torch.cuda.is_available():
        print("CUDA is available: run scripts/gpu_check.py for the gsplat comparison")


# ------------------------------------------------------------------------------------------------------------------
# Capacity: many avatars per device (``--avatars N``; GPU with ``--backend gsplat``, or the CPU renderer one by one)
#
#     rsatalker-bench-render --backend gsplat --avatars 500 [--size 512] [--avatar default_older] [--json out.json]
#
# Every tick binds and renders N participants of one shipped avatar, each posed by its own frame of the clip and
# seen by its own camera (azimuths spread over +-30 degrees), from posed vertices in host memory. "host": the whole
# tick up to uint8 images in (page-locked) host memory, what a renderer node publishes; "device": the same with the
# images left on the GPU as uint8 (for a GPU encoder downstream). Timed for a doubling sweep of N up to --avatars;
# the capacity at --rate Hz is the largest N whose 90th-percentile tick fits in 1/rate s.


def add_capacity_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--avatars", type=int, default=0, help="capacity benchmark: render up to this many avatars per "
                    "tick (0: the single-avatar CPU benchmark above)")
    ap.add_argument("--backend", default="gsplat", choices=["gsplat", "cpu"], help="capacity benchmark renderer")
    ap.add_argument("--avatar", default="default_older", help="capacity benchmark: shipped avatar name or file")
    ap.add_argument("--ticks", type=int, default=20, help="capacity benchmark: timed ticks per avatar count")
    ap.add_argument("--rate", type=float, default=25.0, help="capacity benchmark: target frames/s per avatar")
    ap.add_argument("--no-compile", action="store_true", help="capacity benchmark: bind without torch.compile")
    ap.add_argument("--json", type=str, default="", help="capacity benchmark: also write the figures here")


def capacity_setup(avatar_name: str, size: int, count: int):
    """(avatar, posed vertices [T, V, 3] float32 of its head, cameras [count]) for the capacity benchmark."""
    from ..avatar.avatar_io import resolve_avatar
    from ..avatar.gaussians import load_avatar
    from ..face.head_model import load_head
    avatar = load_avatar(resolve_avatar(avatar_name))
    head = load_head(avatar.head or "default_older")
    T = 25
    t = torch.linspace(0, 2 * math.pi, T)
    motion = torch.zeros(T, head.layout.dim)
    motion[:, head.layout.jaw.start] = 0.15 * (1 + torch.sin(3 * t))
    motion[:, head.layout.neck.start + 1] = 0.12 * torch.sin(t)
    with torch.no_grad():
        verts = head.from_motion(motion).float().numpy()
    centre = (verts[0].min(0) + verts[0].max(0)) / 2
    cams = []
    for i in range(count):
        az = math.radians(-30 + 60 * (i / max(count - 1, 1)))
        eye = centre + 0.62 * np.array([math.sin(az), 0.0, math.cos(az)])
        cams.append(Camera.look_at(eye, centre, [0, 1, 0], size, size, 30.0))
    return avatar, verts, cams


def single_stream_fps(bind_fn, camera: Camera, vertices: torch.Tensor, iters: int = 200,
                      backend: str = "gsplat") -> float:
    """Frames/s of one stream: ``render(bind_fn(vertices[t]), camera)`` with the image left where it was drawn;
    vertices [T, V, 3] already on the device (CUDA synchronised around the timed loop)."""
    from ..render.api import render
    for i in range(5):
        render(bind_fn(vertices[i % len(vertices)]), camera, backend=backend)
    if vertices.is_cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in tqdm(range(iters), desc="single stream", leave=False):
        render(bind_fn(vertices[i % len(vertices)]), camera, backend=backend)
    if vertices.is_cuda:
        torch.cuda.synchronize()
    return iters / (time.perf_counter() - t0)


def capacity_sweep(avatar, verts: np.ndarray, cameras, backend: str, ticks: int, rate: float,
                   compile_bind: bool = True, counts=None, device=None) -> dict:
    """Tick times for N = counts (default: 1, 2, 4, ... up to len(cameras)) -> figures (see section comment).
    device: where gsplat renders (default "cuda")."""
    from ..avatar.gaussians import FastBinder, TorchBinder
    from ..render.api import render_uint8
    from ..render.batch import camera_batch, host_buffer, render_batch, render_batch_uint8
    n_max = len(cameras)
    counts = counts or sorted({2 ** k for k in range(n_max.bit_length()) if 2 ** k <= n_max} | {n_max})
    gpu = backend == "gsplat"
    dev = torch.device(device or "cuda") if gpu else torch.device("cpu")
    binder = TorchBinder(avatar, dev, compile=compile_bind and dev.type == "cuda") if gpu else FastBinder(avatar)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    rows = []
    for n in tqdm(counts, desc=f"capacity ({backend})"):
        cams = camera_batch(cameras[:n], (1.0, 1.0, 1.0), dev)
        posed = np.stack([verts[i % len(verts)] for i in range(n)])
        host_verts = torch.from_numpy(posed).pin_memory() if dev.type == "cuda" else torch.from_numpy(posed)
        out = host_buffer(cams)

        def tick(to_host: bool):
            if not gpu:
                for i in range(n):
                    out[i].numpy()[...] = render_uint8(binder(posed[i]), cams.cameras[i], cams.backgrounds[i])
                return
            g = binder(host_verts.to(dev, non_blocking=True))
            if to_host:
                render_batch_uint8(g, cams, backend="gsplat", out=out)
            else:
                with torch.no_grad():
                    img = render_batch(g, cams, backend="gsplat", with_depth=False).images
                    (img.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)
            sync()

        row = {"avatars": n}
        for mode in (("host", "device") if gpu else ("host",)):
            for _ in range(3):
                tick(mode == "host")
            ms = []
            for _ in range(ticks):
                t0 = time.perf_counter()
                tick(mode == "host")
                ms.append((time.perf_counter() - t0) * 1e3)
            ms = np.array(ms)
            row[f"{mode}_tick_ms_p50"] = float(np.median(ms))
            row[f"{mode}_tick_ms_p90"] = float(np.percentile(ms, 90))
            row[f"{mode}_frames_per_s"] = float(n * 1e3 / ms.mean())
            if mode == "host":  # a blank render would be fast and useless: report what the images show
                row["covered_fraction"] = float((out.numpy() < 250).any(-1).mean())
        rows.append(row)
        print(f"{n:5d} avatars: tick {row['host_tick_ms_p50']:.2f} ms (p90 {row['host_tick_ms_p90']:.2f}) to host "
              f"memory = {row['host_frames_per_s']:.0f} frames/s, head on {100 * row['covered_fraction']:.0f}% of "
              f"the pixels"
              + (f"; image left on the device {row['device_tick_ms_p50']:.2f} ms = "
                 f"{row['device_frames_per_s']:.0f} frames/s" if gpu else ""))
    budget = 1e3 / rate
    fits = [r["avatars"] for r in rows if r["host_tick_ms_p90"] <= budget]
    last = rows[-1]
    return {"backend": backend, "size": cameras[0].width, "gaussians": len(avatar), "rate_hz": rate,
            "rows": rows, f"avatars_at_{rate:g}hz_measured": max(fits) if fits else 0,
            f"avatars_at_{rate:g}hz_linear_estimate": int(last["avatars"] * budget / last["host_tick_ms_p90"]),
            "host_frames_per_s_at_max": last["host_frames_per_s"],
            "device_frames_per_s_at_max": last.get("device_frames_per_s")}


def capacity_main(args) -> dict:
    """``--avatars N``: the capacity sweep; prints the figures (and writes --json)."""
    import json
    if args.backend == "gsplat":
        from ..render.gsplat_backend import gsplat_available
        if not gsplat_available():
            raise SystemExit("--backend gsplat needs CUDA and gsplat (pip install gsplat==1.5.3); "
                             "use --backend cpu on this machine")
    if args.avatars < 1:
        raise SystemExit(f"--avatars must be >= 1, got {args.avatars}")
    avatar, verts, cams = capacity_setup(args.avatar, args.size, args.avatars)
    device = torch.cuda.get_device_name(0) if args.backend == "gsplat" else f"cpu ({os.cpu_count()} cores)"
    print(f"capacity: avatar {args.avatar} ({len(avatar)} Gaussians), {args.size}x{args.size}, backend "
          f"{args.backend} on {device}, up to {args.avatars} avatars per tick, target {args.rate:g} Hz")
    res = capacity_sweep(avatar, verts, cams, args.backend, args.ticks, args.rate, not args.no_compile)
    res["device"] = device
    key = f"avatars_at_{args.rate:g}hz"
    print(f"avatars sustained at {args.rate:g} Hz (p90 tick <= {1e3 / args.rate:.0f} ms, images in host memory): "
          f"{res[key + '_measured']} measured"
          + (" (the largest count tried: raise --avatars to find the limit)"
             if res[key + "_measured"] == args.avatars else "")
          + f"; linear estimate from the largest batch {res[key + '_linear_estimate']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
