"""Make a head and a Gaussian avatar that look like the person in one photo (offline, CPU).

    rsatalker-avatar-from-photo PHOTO --out DIR [--name NAME] [--iterations N] [--views N] [--fit-steps N]

Writes DIR/NAME.npz (the fitted head), DIR/NAME.safetensors (its avatar), DIR/report.json (landmark error,
PSNR / SSIM in the face region, identity distances, timings) and report images (report.png, visemes.png,
landmarks.png, defaults.png, texture.png). Use it in the graph like a default head:

    rsatalker-bringup --set motion_alice.head=DIR/NAME.npz renderer_alice.head=DIR/NAME.npz

(the renderer finds DIR/NAME.safetensors beside the head; renderer_alice.avatar=... names another file).
Exit status 2 with a message naming the problem for a photo that cannot make an avatar.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rsatalker-avatar-from-photo", description=__doc__.split("\n\n")[0])
    ap.add_argument("photo", help="a portrait photo (JPEG or PNG): one person, facing the camera")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--name", default="", help="head/avatar name (default: from the photo's file name)")
    ap.add_argument("--iterations", type=int, default=None, help="stage-3 steps (default 500)")
    ap.add_argument("--views", type=int, default=None, help="synthetic stage-3 views (default 120)")
    ap.add_argument("--level-iterations", type=int, default=None,
                    help="stage-3 steps for each level of detail, 12k and 6k Gaussians (default 150)")
    ap.add_argument("--fit-steps", type=int, default=None, help="head-fit steps on all parameters (default 300)")
    args = ap.parse_args(argv)

    from rsatalker_ros.photo_avatar.detect import PhotoError
    from rsatalker_ros.photo_avatar.pipeline import PhotoAvatarConfig, avatar_from_photo
    cfg = PhotoAvatarConfig(name=args.name)
    if args.iterations is not None:
        if args.iterations < 1:
            ap.error("--iterations must be >= 1")
        cfg.stage3.iterations = args.iterations
        cfg.stage3.densify_until = min(cfg.stage3.densify_until, int(0.8 * args.iterations))
    if args.views is not None:
        if args.views < 1:
            ap.error("--views must be >= 1")
        cfg.n_views = args.views
    if args.level_iterations is not None:
        if args.level_iterations < 1:
            ap.error("--level-iterations must be >= 1")
        cfg.level_iterations = args.level_iterations
    if args.fit_steps is not None:
        if args.fit_steps < 1:
            ap.error("--fit-steps must be >= 1")
        cfg.fit.steps = args.fit_steps
    try:
        r = avatar_from_photo(args.photo, args.out, cfg)
    except PhotoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ids = r["identity_distance"]
    fmt = lambda d: "no face found" if d is None else f"{d:.3f}"  # noqa: E731
    print(f"wrote {r['head']} and {r['avatar']} ({r['stage3']['gaussians']} Gaussians) in {r['seconds']['total_s']} s")
    print(f"landmark error {r['landmark_error_px']:.2f} px = {r['landmark_error_iod_percent']:.2f} % of the "
          f"inter-ocular distance ({r['inter_ocular_px']:.1f} px)")
    print(f"levels of detail, PSNR on {r['levels_eval_views'] - 1} held-out views and the photo: "
          + ", ".join(f"{lv} ({m['gaussians']} Gaussians) {m['psnr']:.2f} dB" for lv, m in r["levels"].items()))
    print(f"face region vs photo: PSNR {r['psnr_face_db']:.2f} dB, SSIM {r['ssim_face']:.3f}")
    print("identity distance to the photo (dlib, < 0.6 = same person): "
          + ", ".join(f"{k} {fmt(v)}" for k, v in ids.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
