"""Per-stage CPU time of the live rasteriser (``render/cpu_tiles.py``), this checkout against a git revision
(default: 73e3930, the one before issue #9), frames interleaved in one process, one numba thread.

    python scripts/profile_cpu_tiles.py [--frames 16] [--baseline REV]

Each stage that ``render_cpu`` calls is wrapped with a timer: the numba kernels (projection, depth sort, binning,
compositing; the numba compositing call is repeated on empty tile lists to split off its buffer set-up and 8-bit
output conversion) and this checkout's C++ binning + compositing (``composite_c``: ``render/raster_kernel.cpp``).
The whole frame is timed too (less that extra call); the C++ projection of degree-0 colours is in the rest of it.
Levels: default_older full at 512 x 512 and 6k at 256 x 256 (the graph's typical level and render scale). Prints
medians of process_time per stage in ms; compare ratios within one run (the figures move with machine load).
"""

import argparse
import os
import time

import numba
import numpy as np
from tqdm import tqdm

from rsatalker_ros.avatar.gaussians import FastBinder
from rsatalker_ros.avatar.levels import load_level
from rsatalker_ros.cli.bench_render import BASELINE, _baseline_rasteriser, _head
from rsatalker_ros.render import cpu_tiles, raster_c
from rsatalker_ros.render.api import _cpu_inputs
from rsatalker_ros.render.camera import Camera

STAGES = ("_project", "_depth_order", "_bin", "_bin_live", "_raster", "_composite_c")


def instrument(module_globals) -> dict:
    """Wrap the module's stage kernels (looked up by render_cpu at call time) with timers; returns the times."""
    times = {}
    for name in STAGES:
        kernel = module_globals.get(name)
        if kernel is None or not (hasattr(kernel, "py_func") or name == "_composite_c"):
            continue

        def timed(*args, _kernel=kernel, _name=name):
            c = time.process_time()
            result = _kernel(*args)
            times.setdefault(_name, []).append(time.process_time() - c)
            if _name == "_raster":  # the same call with no Gaussians in any tile: set-up and output only
                empty = np.zeros_like(args[0])
                c = time.process_time()
                _kernel(empty, *args[1:])
                times.setdefault("setup+output", []).append(time.process_time() - c)
            return result
        module_globals[name] = timed
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--baseline", default=BASELINE)
    args = ap.parse_args()
    numba.set_num_threads(1)
    _, faces, verts = _head()
    centre = (verts[0].min(0) + verts[0].max(0)) / 2
    cam = Camera.look_at(eye=centre + np.array([0.0, 0.0, 0.62]), target=centre, up=[0, 1, 0], width=512,
                         height=512, fov_y_deg=30.0)
    bg = np.ones(3, np.float32)
    old = _baseline_rasteriser(args.baseline)
    new = cpu_tiles.render_cpu
    lib = raster_c.load()
    print("this checkout: " + (f"C++ kernel ({lib.rs_isa().decode()})" if lib is not None else
                               f"numba kernels (C++ kernel unavailable: {raster_c.reason()})"))
    times = {"old": instrument(old.__globals__), "new": instrument(new.__globals__)}
    for level, size in (("full", 512), ("6k", 256)):
        binder = FastBinder(load_level("default_older", level, faces=faces))
        inputs = [_cpu_inputs(binder(verts[i])) for i in range(0, len(verts), 3)]
        c = cam.with_size(size, size)
        for fn in (old, new):
            fn(*inputs[0], c, bg, uint8=True)  # compile, warm
        for t in times.values():
            t.clear()
        frame = {"old": [], "new": []}
        for i in tqdm(range(args.frames), desc=f"{level} {size}px", leave=False):
            for label, fn in (("old", old), ("new", new)):
                c0 = time.process_time()
                fn(*inputs[i % len(inputs)], c, bg, uint8=True)
                frame[label].append(time.process_time() - c0)
        totals = {}
        for label, t in times.items():
            med = {k: 1e3 * float(np.median(v)) for k, v in t.items()}
            if "_raster" in med:
                med["_raster"] -= med["setup+output"]
            # the whole frame, less the instrumentation's extra empty compositing call (numba path)
            totals[label] = 1e3 * float(np.median(frame[label])) - med.get("setup+output", 0.0)
            print(f"{level} {size}x{size} {label}: " + ", ".join(f"{k.strip('_')} {v:.2f}" for k, v in med.items())
                  + f" ms; whole frame {totals[label]:.2f} ms")
        print(f"  old / new: {totals['old'] / totals['new']:.2f}x; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
