#!/usr/bin/env python3
"""GPU check for the gsplat backend: compare gsplat with the CPU renderer and time gsplat at 512x512.

    pip install gsplat==1.5.3        # CUDA only; the first call may compile gsplat's CUDA kernels (minutes)
    python scripts/gpu_check.py [--size 512] [--counts 20000 50000] [--iters 200] [--json out.json]

Prints, for random scenes (SH degree 0 and 3) and for the default-head avatar: the mean absolute difference
between gsplat and the CPU tile renderer (image and alpha, in 1/255 units; the renderers share the image formation,
so it should be well below 1), then gsplat's time per 512x512 frame (bind on the GPU + rasterization, CUDA
synchronised). Exits with status 1 if any image differs by 1/255 or more on average.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rsatalker_ros.avatar.gaussians import GaussianAvatar, WorldGaussians, bind  # noqa: E402
from rsatalker_ros.render.api import render  # noqa: E402
from rsatalker_ros.render.camera import Camera  # noqa: E402


def random_scene(seed: int, n: int, sh_degree: int) -> WorldGaussians:
    rng = np.random.default_rng(seed)
    sh = rng.normal(scale=0.4, size=(n, (sh_degree + 1) ** 2, 3))
    sh[:, 0] = (rng.uniform(0, 1, (n, 3)) - 0.5) / 0.28209479
    f = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    return WorldGaussians(means=f(rng.uniform([-0.25, -0.2, -0.2], [0.25, 0.2, 0.2], (n, 3))),
                          scales=f(np.exp(rng.uniform(np.log(0.004), np.log(0.06), (n, 3)))),
                          quats=f(rng.normal(size=(n, 4))), opacities=f(rng.uniform(0.02, 1.0, n)), sh=f(sh))


def to_cuda(g: WorldGaussians) -> WorldGaussians:
    return WorldGaussians(*(t.cuda().contiguous() for t in (g.means, g.scales, g.quats, g.opacities, g.sh)))


def head_avatar(count: int):
    """(avatar on CUDA, neutral vertices [V,3] on CUDA, head centre [3]) for the default head (or an ellipsoid)."""
    try:
        from rsatalker_ros.face.head_model import load_head
        head = load_head("default_older")
        verts, faces = head.neutral().float(), head.faces
    except Exception as e:  # noqa: BLE001
        print(f"default head unavailable ({e}); using an ellipsoid")
        from rsatalker_ros.avatar.meshes import icosphere
        v, f = icosphere(4, 1.0)
        verts, faces = torch.as_tensor(v * np.array([0.09, 0.12, 0.1], np.float32)), torch.as_tensor(f)
    from rsatalker_ros.cli.bench_render import benchmark_avatar
    av = benchmark_avatar(faces.numpy(), verts.numpy(), count)
    cuda = GaussianAvatar(*(t.cuda() for t in (av.means, av.log_scales, av.quats, av.opacity_logits, av.sh,
                                               av.parent, av.faces)), head=av.head)
    lo, hi = verts.min(0).values.numpy(), verts.max(0).values.numpy()
    centre = (lo + hi) / 2
    return cuda, verts.cuda(), centre


def mae255(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float().cpu() - b.float().cpu()).abs().mean()) * 255.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--counts", type=int, nargs="+", default=[20000, 50000])
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--json", type=str, default="", help="also write the figures to this JSON file")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 2
    import gsplat
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, device {torch.cuda.get_device_name(0)}, "
          f"gsplat {gsplat.__version__}")
    out = {"device": torch.cuda.get_device_name(0), "gsplat": gsplat.__version__, "mae_255": {}, "ms_per_frame": {}}
    ok = True
    bg = (0.3, 0.4, 0.5)
    cam = Camera.look_at([0.15, 0.1, 0.9], [0, 0, 0], [0, 1, 0], 160, 128, 40)
    for seed, degree in ((0, 0), (1, 3)):
        g = random_scene(seed, 2000, degree)
        t0 = time.perf_counter()
        gpu = render(to_cuda(g), cam, background=bg, backend="gsplat")
        torch.cuda.synchronize()
        first = time.perf_counter() - t0
        cpu = render(g, cam, background=bg, backend="cpu")
        e_img, e_a = mae255(gpu.image, cpu.image), mae255(gpu.alpha, cpu.alpha)
        out["mae_255"][f"random_sh{degree}"] = [e_img, e_a]
        ok &= e_img < 1.0 and e_a < 1.0
        print(f"random scene, SH degree {degree}: gsplat vs CPU mean abs diff image {e_img:.3f}/255, alpha "
              f"{e_a:.3f}/255 (first gsplat call {first:.1f} s, includes any CUDA compilation)")
    for count in args.counts:
        av, verts, centre = head_avatar(count)
        hcam = Camera.look_at(centre + np.array([0.0, 0.0, 0.62]), centre, [0, 1, 0], args.size, args.size, 30.0)
        with torch.no_grad():
            g = bind(av, verts)
            gpu = render(g, hcam, backend="gsplat")
            cpu = render(WorldGaussians(*(t.cpu() for t in (g.means, g.scales, g.quats, g.opacities, g.sh))), hcam,
                         backend="cpu")
            e_img = mae255(gpu.image, cpu.image)
            ok &= e_img < 1.0
            for _ in range(10):
                render(bind(av, verts), hcam, backend="gsplat")
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(args.iters):
                img = render(bind(av, verts), hcam, backend="gsplat").image
            torch.cuda.synchronize()
            ms = (time.perf_counter() - t0) * 1e3 / args.iters
        out["mae_255"][f"head_{len(av)}"] = [e_img]
        out["ms_per_frame"][str(len(av))] = ms
        print(f"head avatar, {len(av)} Gaussians, {args.size}x{args.size}: gsplat vs CPU mean abs diff "
              f"{e_img:.3f}/255; gsplat bind + render {ms:.3f} ms/frame ({1e3 / ms:.0f} frames/s), "
              f"image {tuple(img.shape)}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    print("OK" if ok else "MISMATCH: gsplat and the CPU renderer differ by >= 1/255 on average")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
