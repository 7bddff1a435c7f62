"""rsatalker-make-dataset: write a synthetic two-person conversation dataset.

    python -m rsatalker_ros.cli.make_dataset --out runs/data --train 200 --val 20 --test 20 --seconds 12 --seed 0
    python -m rsatalker_ros.cli.make_dataset --out runs/data --engines espeak-ng,festival --acoustics
    python -m rsatalker_ros.cli.make_dataset --out runs/babble --engines espeak-ng,festival --acoustics \
        --noise-kinds babble --snr-db 0,20

--engines picks the speech synthesizers (docs/dataset_format.md; flite is the held-out one the evaluation uses);
--acoustics adds room noise, reverberation, microphone colouration, level changes and noise-only stretches
(rsatalker_ros/data/acoustics.py), each drawn per track from the clip's seed and recorded in clip.json.
"""

from __future__ import annotations

import argparse
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--out", default="runs/data", help="dataset root folder")
    ap.add_argument("--train", type=int, default=200, help="number of training clips")
    ap.add_argument("--val", type=int, default=20, help="number of validation clips")
    ap.add_argument("--test", type=int, default=20, help="number of test clips")
    ap.add_argument("--seconds", type=float, default=12.0, help="length of each clip (s)")
    ap.add_argument("--seed", type=int, default=0, help="dataset seed (clips are reproducible)")
    ap.add_argument("--engines", default="espeak-ng",
                    help="comma-separated speech synthesizers: espeak-ng, festival, flite")
    ap.add_argument("--acoustics", action="store_true", help="noisy rooms (AcousticConfig defaults) instead of clean")
    ap.add_argument("--clean-prob", type=float, default=None, help="with --acoustics: share of tracks left clean")
    ap.add_argument("--noise-kinds", default="",
                    help="with --acoustics: comma-separated noise kinds drawn for noisy tracks (default: all six)")
    ap.add_argument("--snr-db", default="", help="with --acoustics: SNR range LOW,HIGH in dB (default 0,30)")
    ap.add_argument("--plot", default="", help="also write a trajectory plot of the first clip to this PNG")
    ap.add_argument("--stats-plot", default="", help="also write per-relationship behaviour statistics to this PNG")
    args = ap.parse_args(argv)
    from rsatalker_ros.data.acoustics import AcousticConfig
    from rsatalker_ros.data.synthetic import generate_dataset
    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    try:
        acoustics = None
        if args.acoustics:
            over = {}
            if args.clean_prob is not None:
                over["clean_prob"] = args.clean_prob
            if args.noise_kinds:
                over["noise_kinds"] = tuple(k.strip() for k in args.noise_kinds.split(",") if k.strip())
            if args.snr_db:
                try:
                    low, high = (float(v) for v in args.snr_db.split(","))
                except ValueError:
                    raise ValueError(f"--snr-db must be LOW,HIGH in dB, got {args.snr_db!r}") from None
                if not low <= high:
                    raise ValueError(f"--snr-db: LOW must not exceed HIGH, got {args.snr_db!r}")
                over["snr_db"] = (low, high)
            acoustics = AcousticConfig(**over)
        elif args.clean_prob is not None or args.noise_kinds or args.snr_db:
            raise ValueError("--clean-prob, --noise-kinds and --snr-db need --acoustics")
        t0 = time.time()
        root = generate_dataset(args.out, args.train, args.val, args.test, args.seconds, args.seed, engines,
                                acoustics)
    except ValueError as e:
        ap.error(str(e))
    n = args.train + args.val + args.test
    dt = time.time() - t0
    print(f"wrote {n} clips of {args.seconds:g} s to {root} in {dt:.1f} s ({dt / max(n, 1):.3f} s/clip)")
    if args.plot:
        from rsatalker_ros.data.dataset import list_clips, load_clip
        from rsatalker_ros.data.plot import plot_clip
        for split in ("train", "val", "test"):
            clips = list_clips(root, split)
            if clips:
                print("plot:", plot_clip(load_clip(clips[0]), args.plot))
                break
    if args.stats_plot:
        from rsatalker_ros.data.plot import behaviour_table, plot_behaviour
        table = behaviour_table(root, "train")
        for k, v in table.items():
            print(f"{k:22s} " + " ".join(f"{s}={x:.3f}" for s, x in v.items()))
        print("stats plot:", plot_behaviour(table, args.stats_plot))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
