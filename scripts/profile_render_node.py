"""Per-frame CPU cost of the renderer node outside the rasteriser (issue #9 items 3/4), in one process.

    python scripts/profile_render_node.py [--frames 60] [--levels "6k:0.5" "full:1.0"] [--publish]
    for r in /tmp/base .; do (cd $r && python /path/to/profile_render_node.py); done     # old against new

(Run from a checkout's root, ``python -m``-style imports come from the working directory first; the script
works with checkouts whose image_to_msg has no ``reuse``.)

Feeds posed meshes of the default head (neutral + a moving jaw/brow-like perturbation) through what the renderer
node does per frame, each step timed with the calling thread's CPU time (time.thread_time; the numba rasteriser
runs on one thread in the calling thread, as in the node), median over --frames frames:
  decode   FaceMesh -> checks (input_limits.check_mesh) -> mesh_from_msg
  bind     the avatar level's FastBinder (Gaussians on the posed triangles)
  raster   render_cpu on the bound Gaussians alone (what cli/bench_render measures)
  tick     RenderStage.render_tick (bind + raster + upscale + frame assembly: the stage's whole render)
  message  image_to_msg + camera_info_to_msg as the node does them (its Image kept and refilled where
           image_to_msg takes ``reuse``) (+ publish on a real rclpy publisher with --publish)
and prints the node's non-raster share: tick - raster + decode + message. The machine is shared: compare the rows
of one run (ratios), not figures across runs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _median_ms(samples) -> float:
    return float(np.median(samples)) * 1000.0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--levels", nargs="+", default=["6k:0.5", "12k:1.0", "full:1.0"],
                    help="level:scale pairs to time")
    ap.add_argument("--publish", action="store_true", help="also publish on rclpy publishers (no subscriber)")
    args = ap.parse_args(argv)

    import inspect

    import torch

    from rsatalker_ros.face.head_model import load_head
    from rsatalker_ros.input_limits import check_mesh
    from rsatalker_ros.render.api import _cpu_inputs
    from rsatalker_ros.render.cpu_tiles import render_cpu
    from rsatalker_ros.ros.convert import (camera_info_to_msg, image_to_msg, mesh_from_msg, mesh_to_msg,
                                           stamp_to_ns)
    from rsatalker_ros.stages.render import RenderConfig, RenderStage

    cfg = RenderConfig(participant="alice", backend="cpu", width=args.size, height=args.size)
    stage = RenderStage(cfg, lambda *a: None, time.monotonic_ns, log=print)
    head = load_head("default_older")
    with torch.no_grad():
        neutral = head.neutral().numpy().astype(np.float32)
    rng = np.random.default_rng(0)
    wobble = rng.normal(scale=0.002, size=neutral.shape).astype(np.float32)
    meshes = [neutral + np.float32(np.sin(i / 5.0)) * wobble for i in range(args.frames)]
    msgs = [mesh_to_msg(m, "alice", "t", time.time_ns(), "alice/head") for m in meshes]

    pubs = None
    if args.publish:
        import rclpy
        from sensor_msgs.msg import CameraInfo, Image
        rclpy.init()
        node = rclpy.create_node("profile_render_node")
        pubs = (node.create_publisher(Image, "/profile/image_raw", 1),
                node.create_publisher(CameraInfo, "/profile/camera_info", 1))

    reuse = "reuse" in inspect.signature(image_to_msg).parameters
    kept = {}
    st = stage.first
    clock = time.thread_time
    import rsatalker_ros
    print(f"{rsatalker_ros.__file__}: {args.frames} frames, {args.size} x {args.size}; thread CPU ms, median per "
          f"frame; load {__import__('os').getloadavg()[0]:.1f}")
    print(f"{'level':>10} {'decode':>7} {'bind':>7} {'raster':>7} {'tick':>7} {'message':>8} {'non-raster':>10}")
    for spec in args.levels:
        level, scale = spec.split(":")
        scale = float(scale)
        stage.render_tick({"alice": (meshes[0], 0)}, level, scale)      # aims the camera, sets the scale
        renderer = stage.renderers[level]
        part = renderer.participants["alice"]
        binder = renderer._binders[id(part.avatar)]
        rows = {k: [] for k in ("decode", "bind", "raster", "tick", "message")}
        for i, msg in enumerate(msgs):
            t0 = clock()
            why = check_mesh(msg, cfg, "alice", st.n_vertices, now_ns=stamp_to_ns(msg.header.stamp))
            assert why is None, why
            v = mesh_from_msg(msg, st.n_vertices)
            t1 = clock()
            g = binder(v)
            t2 = clock()
            render_cpu(*_cpu_inputs(g), part.camera, part.background, uint8=True)
            t3 = clock()
            frames, failed = stage.render_tick({"alice": (v, i)}, level, scale)
            assert not failed, failed
            t4 = clock()
            img, cam = frames[0].views[""]
            if reuse:                   # as nodes/renderer.py does it
                m_img = kept["image"] = image_to_msg(img, i, "alice/camera_optical_frame", reuse=kept.get("image"))
                if kept.get("cam") is not cam:
                    kept["cam"] = cam
                    kept["info"] = camera_info_to_msg(cam.to_camera_info_dict(), i, "alice/camera_optical_frame")
                m_info = kept["info"]
                m_info.header.stamp = m_img.header.stamp
            else:
                m_img = image_to_msg(img, i, "alice/camera_optical_frame")
                m_info = camera_info_to_msg(cam.to_camera_info_dict(), i, "alice/camera_optical_frame")
            if pubs:
                pubs[0].publish(m_img)
                pubs[1].publish(m_info)
            t5 = clock()
            for k, a, b in (("decode", t0, t1), ("bind", t1, t2), ("raster", t2, t3), ("tick", t3, t4),
                            ("message", t4, t5)):
                rows[k].append(b - a)
        med = {k: _median_ms(v) for k, v in rows.items()}
        non_raster = med["tick"] - med["raster"] + med["decode"] + med["message"]
        print(f"{spec:>10} {med['decode']:7.2f} {med['bind']:7.2f} {med['raster']:7.2f} {med['tick']:7.2f} "
              f"{med['message']:8.2f} {non_raster:10.2f}")


if __name__ == "__main__":
    main()
