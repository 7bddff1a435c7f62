"""Evaluate motion models on a held-out split and write a markdown report with plots.

    python -m rsatalker_ros.cli.evaluate --data runs/motion_data \
        --model rsatalker=rsatalker_ros/assets/checkpoints/motion_default.safetensors \
        --model "no-relation ablation=runs/motion_shared/model.safetensors" \
        --out docs/eval_motion.md --images docs/images

Compares the given models (run live: streaming, partner motion = the model's own prediction) with a mean-motion
baseline: LVE and FDD on the head's lip and upper-face vertices, DualTalk's FD and MSE on expression, jaw and pose
(neck), and relationship accuracy of a probe trained on ground-truth listener motion (chance 25%).

    python -m rsatalker_ros.cli.evaluate --robustness --robust-data runs/heldout --robust-clips 8 \
        --out docs/eval_motion.md --append "Robustness: today's shipped model" --images docs/images

runs the robustness evaluation instead (rsatalker_ros/eval/robustness.py; the held-out clips are generated into
--robust-data when missing): clean held-out, each noise kind at 20/10/0 dB SNR, noise-only tracks at -30 and
-50 dBFS, and the held-out synthesizer (flite), with envelope correlation, opening under noise, noise-only opening
share, /p b m/ closure, LVE and relationship accuracy against issue #12's targets, plus a PNG plot.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

from rsatalker_ros.eval.evaluate import (DEFAULT_HEAD, evaluate, load_models, markdown_table, plot_results,
                                         set_threads)
from rsatalker_ros.motion.layout import MotionLayout


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rsatalker_ros.cli.evaluate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="runs/motion_data", help="dataset root")
    ap.add_argument("--split", default="test", help="held-out split to evaluate (default test)")
    ap.add_argument("--probe-split", default="train", help="split whose ground truth trains the relationship probe")
    ap.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                    help="a motion checkpoint to evaluate (repeatable; default: the shipped one)")
    ap.add_argument("--out", default="runs/eval_motion.md", help="markdown report to write")
    ap.add_argument("--images", default="", help="folder for the plots (default: beside the report)")
    ap.add_argument("--json", default="", help="also write the figures as JSON to this file")
    ap.add_argument("--max-clips", type=int, default=0, help="evaluate at most this many clips (0 = all)")
    ap.add_argument("--head", default=DEFAULT_HEAD, help="head for clips that name none (vertex metrics)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument("--robustness", action="store_true", help="run the robustness evaluation (see above)")
    ap.add_argument("--robust-data", default="runs/heldout", help="folder of the robustness held-out clips")
    ap.add_argument("--robust-clips", type=int, default=8, help="held-out clips per synthesizer (robustness)")
    ap.add_argument("--probe-clips", type=int, default=48, help="ground-truth clips for the probe (robustness)")
    ap.add_argument("--robust-plot", default="motion_robustness.png", help="file name of the robustness plot")
    ap.add_argument("--append", default="", metavar="TITLE",
                    help="append the report to --out as a section with this title instead of rewriting the file")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    specs = args.model or ["rsatalker=" + str(Path(__file__).resolve().parent.parent / "assets" / "checkpoints"
                                              / "motion_default.safetensors")]
    t0 = time.time()
    if args.robustness:
        return _robustness(args, specs, argv)
    try:
        models = load_models(specs)
        res = evaluate(models, args.data, args.split, args.probe_split, args.max_clips, args.head,
                       progress=not args.quiet)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    images = Path(args.images) if args.images else out.parent
    layout = MotionLayout.for_basis(next(iter(models.values())).cfg.basis)
    files = plot_results(res, images, layout)
    table = markdown_table(res)
    rel = lambda p: Path(p).resolve().relative_to(out.parent.resolve()) if Path(p).resolve().is_relative_to(  # noqa
        out.parent.resolve()) else Path(p).resolve()
    lines = [
        "# Motion model evaluation", "",
        f"Held-out split `{args.split}` of `{args.data}`: {res.n_clips} clips, both participants, run live "
        f"(streaming; each participant conditioned on the relationship and on the *predicted* motion of the "
        f"other). Generated in {time.time() - t0:.0f} s by", "",
        "    python -m rsatalker_ros.cli.evaluate " + " ".join(
            f'"{a}"' if " " in a else a for a in (sys.argv[1:] if argv is None else argv)), "",
        table, "",
        "Lower is better for every column but the last. LVE: max lip-vertex L2 error per frame, averaged (mm). "
        "FDD: |upper-face dynamics of ground truth − of prediction| (std over time of each vertex's squared "
        "displacement, mean over vertices; mm²). FD / MSE: DualTalk's Fréchet distance and mean squared error per "
        "clip on expression (ARKit weights), jaw and pose (neck, rad). Rel. acc.: a 4-class relationship probe "
        f"(kinship × hierarchy) trained on ground-truth listener motion of `{args.probe_split}` and applied to "
        "each method's listener motion (chance 25%; the last row is the probe on held-out ground truth).", "",
        "Models: " + ", ".join(f"`{s}`" for s in specs) + "; `mean motion` repeats the training data's mean frame.",
        "",
    ]
    lines += [f"![{f.stem}]({rel(f)})" for f in files]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps({"metrics": res.metrics, "relation_acc": res.relation_acc,
                                               "n_clips": res.n_clips}, indent=1))
    print(table)
    print(f"report: {out}")
    return 0


def _robustness(args, specs, argv) -> int:
    from rsatalker_ros.eval.robustness import (RobustnessConfig, evaluate_robustness, make_heldout, markdown_tables,
                                               plot_robustness, target_figures, targets_table)
    t0 = time.time()
    cfg = RobustnessConfig(n_clips=args.robust_clips, n_probe=args.probe_clips)
    try:
        if cfg.n_clips < 1 or cfg.n_probe < 4:
            raise ValueError(f"--robust-clips must be >= 1 and --probe-clips >= 4, got {cfg.n_clips}, {cfg.n_probe}")
        models = load_models(specs)
        make_heldout(args.robust_data, cfg, progress=not args.quiet)
        res = evaluate_robustness(models, args.robust_data, cfg, args.head, progress=not args.quiet)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    images = Path(args.images) if args.images else out.parent
    png = plot_robustness(res, images / Path(args.robust_plot).name)
    rel = Path(os.path.relpath(png.resolve(), out.parent.resolve()))
    cmd = "python -m rsatalker_ros.cli.evaluate " + " ".join(
        f'"{a}"' if " " in a else a for a in (sys.argv[1:] if argv is None else argv))
    body = [
        f"{res.n_clips} held-out clips per synthesizer ({cfg.seconds:g} s, both participants, run live), "
        f"generated into `{args.robust_data}` with seed {cfg.seed}; probe trained on {cfg.n_probe} ground-truth "
        f"clips. {time.time() - t0:.0f} s on a shared machine, by", "", "    " + cmd, "",
        "Against the targets of issue #12:", "", targets_table(res), "",
        "All conditions:", "", markdown_tables(res), "",
        "env. corr: Pearson correlation of the inner-lip opening of the posed default head with the clean speech "
        "envelope (RMS per frame). opening: mean opening during speaking frames (mm); / clean: against the same "
        "synthesizer's clean audio. noise share: noise-only tracks, mean opening / the clean speaking opening. "
        f"closure: /p b m/ phones (exact synthesizer timings) whose smallest opening over the frames centred in the phone is below 25% of the track's "
        "open-vowel opening (count in brackets). initial /p b m/: mean opening over the frames of utterance-initial "
        "/p b m/ (after >= 150 ms of pause; the lips should be shut there). LVE and rel. acc. as in the table "
        "above (clean clips only; the probe is trained on this run's ground-truth clips).", "", f"![{png.stem}]({rel})", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.append:
        old = out.read_text() if out.is_file() else ""
        out.write_text(old.rstrip("\n") + "\n\n## " + args.append + "\n\n" + "\n".join(body))
    else:
        out.write_text("# Motion model robustness\n\n" + "\n".join(body))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": res.rows, "ground_truth": res.ground_truth,
                                               "targets": {m: target_figures(r) for m, r in res.rows.items()}},
                                              indent=1))
    print(targets_table(res))
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
