"""Benchmark the motion model against its targets and print the figures (no assertions).

    python -m rsatalker_ros.cli.bench_motion [--checkpoint PATH] [--ablation runs/motion_shared/model.safetensors]
                                             [--data runs/motion_data] [--threads 1] [--eval-clips 48]

Targets: live streaming >= 500 motion frames/s for one participant (batch 1, log-mel extraction included);
model resident memory < 300 MB; on held-out synthetic conversations the model beats the no-relationship ablation
and the mean-motion baseline on LVE and relationship accuracy, and relationship accuracy >= 70%.
Without --data a small synthetic set is generated in a temporary folder (probe: 96 training clips).
--robustness-clips N adds issue #12's robustness targets (noise-only opening, 10 dB SNR, /p b m/ closure on
held-out voices and the held-out synthesizer; rsatalker_ros/eval/robustness.py) on N generated held-out clips.
"""

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def rss_mb() -> float:
    """Resident set size of this process (MB), from /proc (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def bench_streaming(model, seconds: float, chunk_ms: float, rng) -> tuple[float, int]:
    """Frames per second of StreamingMotion (one participant, partner audio too) on noise-modulated audio."""
    from rsatalker_ros.motion.streaming import StreamingMotion
    from rsatalker_ros.social.relation import Relation
    n = int(seconds * 16000)
    env = np.repeat(rng.random(n // 1600 + 1) > 0.5, 1600)[:n]
    own = (rng.standard_normal(n) * 0.1 * env).astype(np.float32)
    partner = (rng.standard_normal(n) * 0.1 * ~env).astype(np.float32)
    sm = StreamingMotion(model, Relation.parse("non_blood", "unequal", senior="me"), "me", "you")
    step = int(chunk_ms * 16)
    sm.push(own[:step * 10], partner[:step * 10])     # warm-up
    sm.reset()
    t0 = time.perf_counter()
    frames = 0
    for i in range(0, n, step):
        frames += len(sm.push(own[i:i + step], partner[i:i + step]))
    dt = time.perf_counter() - t0
    return frames / dt, frames


class _Timed:
    """Stands in for a callable and adds its process CPU time to ``acc[label]``."""

    def __init__(self, fn, acc: dict, label: str):
        self.fn, self.acc, self.label = fn, acc, label

    def __call__(self, *args, **kwargs):
        t = time.process_time()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.acc[self.label] = self.acc.get(self.label, 0.0) + time.process_time() - t

    def __getattr__(self, name):          # the timed object's other methods, untimed
        return getattr(self.fn, name)


def bench_live_path(checkpoint: str, seconds: float, threads: int) -> None:
    """The motion node's per-frame work without DDS: the ROS-free MotionStage fed the demo conversation in 20 ms
    chunks of both streams (as the node receives them), and the three messages the node builds per frame. Prints
    process CPU per second of audio (cores per participant) split by part, and the torch reference of the
    parts that have a live path (speech encoder, model step, skinning) on the same frames, timed in this run, and
    the model step's numpy ops (before it was compiled) against its compiled blocks, interleaved."""
    from rsatalker_ros.audio.wav_io import read_wav
    from rsatalker_ros.stages import params
    from rsatalker_ros.stages.motion import MotionConfig, MotionStage
    demo = Path(__file__).resolve().parents[1] / "assets" / "demo"
    a, rate = read_wav(demo / "speaker_a.wav")
    b, _ = read_wav(demo / "speaker_b.wav")
    n = min(a.shape[0], b.shape[0], int(seconds * rate))
    a, b = a[:n, 0].copy(), b[:n, 0].copy()
    stage = MotionStage(params.build(MotionConfig, {"checkpoint": checkpoint, "torch_threads": threads}))
    try:
        from rsatalker_ros.nodes.motion import SerializedFrames
        frame_messages = SerializedFrames()       # the node's messages, as bytes patched per frame as the node does
    except ImportError as e:                      # no built interfaces: the stage alone
        print(f"  (messages not built: {e})")
        frame_messages = None
    acc: dict = {}
    dyad = stage.stream._dyad
    parts = [(stage.aligner, "push", "audio alignment"), (stage.aligner, "pop", "audio alignment"),
             (stage.voice, "push", "voice activity"), (dyad._feat, "push", "log-mel features"),
             (dyad, "_speech", "speech encoder (numpy)"), (dyad, "_core", "motion step (compiled)"),
             (stage, "skin", "skinning")]
    chunk, t0, frames = rate // 50, 10**12, []

    def feed(lo: int, hi: int) -> None:
        for i in range(lo, hi - chunk + 1, chunk):
            for stream, x in ((0, a), (1, b)):
                out, _ = stage.push_audio(stream, x[i:i + chunk], t0 + i * 10**9 // rate)
                if out and frame_messages is not None:
                    t = time.process_time()
                    for _ in frame_messages(stage.cfg, stage, out, stage.speaking(time.monotonic())):
                        pass
                    acc["messages"] = acc.get("messages", 0.0) + time.process_time() - t
                frames.extend(out)

    warm = min(n, 2 * rate)
    feed(0, warm)                                 # warm-up: caches filled, masks built, messages serialized once
    frames.clear()
    acc.clear()                                   # (the warm-up's messages are not part of the measured span)
    saved = [(obj, name, vars(obj).get(name)) for obj, name, _ in parts]
    for obj, name, label in parts:
        setattr(obj, name, _Timed(getattr(obj, name), acc, label))
    try:
        c0 = time.process_time()
        feed(warm, n)
        cpu = time.process_time() - c0
    finally:
        for obj, name, own in saved:             # an instance attribute back, or the class's method again
            setattr(obj, name, own) if own is not None else delattr(obj, name)
    audio_s = (n - warm) / rate
    print(f"  {len(frames)} frames from {audio_s:.1f} s of the demo conversation: {cpu / audio_s:.3f} cores "
          f"per participant ({1000 * cpu / max(len(frames), 1):.2f} ms CPU per frame), no DDS")
    for label in dict.fromkeys(lb for _, _, lb in parts + [(None, None, "messages")]):
        if label in acc:
            print(f"    {label:24s} {acc[label] / audio_s:.4f} cores  {1000 * acc[label] / len(frames):6.3f} ms/frame")
    rest = cpu - sum(acc.values())
    print(f"    {'rest (stage glue)':24s} {rest / audio_s:.4f} cores  {1000 * rest / len(frames):6.3f} ms/frame")
    # the torch reference of the two live numpy parts, on the same frames
    from rsatalker_ros.motion.model import CoreState
    rng = np.random.default_rng(0)
    T = min(len(frames), 250)
    enc = torch.from_numpy(rng.standard_normal((2, T, dyad.cfg.d_model)).astype(np.float32))
    past = torch.from_numpy(np.stack([np.stack([f.motion for f in frames[:T]])] * 2))
    known = torch.ones(2, 1, dtype=torch.bool)
    motion = torch.from_numpy(np.stack([f.motion for f in frames[:T]]))
    core_type, timings, queries = type(dyad._core), {}, dyad.queries.tolist()
    compiled, numpy_step = core_type(dyad.model), core_type(dyad.model, compiled=False)
    with torch.inference_mode():
        state = CoreState()
        steps = {"torch": lambda i: dyad.model.core(enc[:, i:i + 1], enc.flip(0)[:, i:i + 1], past[:, i:i + 1],
                                                    known, dyad.queries, state),
                 "numpy": lambda i: numpy_step(enc[:, i:i + 1].numpy(), enc.flip(0)[:, i:i + 1].numpy(),
                                               past[:, i:i + 1].numpy(), known.numpy(), queries),
                 "compiled": lambda i: compiled(enc[:, i:i + 1].numpy(), enc.flip(0)[:, i:i + 1].numpy(),
                                                past[:, i:i + 1].numpy(), known.numpy(), queries)}
        for label in steps:
            timings[f"step {label}"] = 0.0
        for i in range(T):                    # interleaved frame by frame: other load on the machine hits all three
            for label, step in steps.items():
                c0 = time.process_time()
                step(i)
                timings[f"step {label}"] += (time.process_time() - c0) / T
        for label, pose in (("torch", lambda i: stage.head.from_motion(motion[i:i + 1])),
                            ("numpy", lambda i: stage.skin(motion[i:i + 1].numpy()))):
            c0 = time.process_time()
            for i in range(T):
                pose(i)
            timings[f"skin {label}"] = (time.process_time() - c0) / T
        feats = rng.standard_normal((2, T, dyad.cfg.feature_dim)).astype(np.float32) * 3.0 - 6.0
        audio_state, speech = dyad.model.initial_audio_state(2), type(dyad._speech)(dyad.model, 2)
        for label, encode in (("torch", lambda i: dyad.model.encode_audio(torch.from_numpy(feats[:, i:i + 1]),
                                                                          audio_state)),
                              ("numpy", lambda i: speech(feats[:, i:i + 1]))):
            c0 = time.process_time()
            for i in range(T):
                encode(i)
            timings[f"speech {label}"] = (time.process_time() - c0) / T
    names = {"speech": "speech encoder (encode_audio)", "step": "motion step (model.core)",
             "skin": "skinning (from_motion)"}
    for part, name in names.items():
        ref, new = timings[f"{part} torch"], timings[f"{part} compiled" if part == "step" else f"{part} numpy"]
        print(f"    reference {name}: torch {1000 * ref:.3f} ms/frame, live path {1000 * new:.3f} ms/frame "
              f"({ref / new:.1f}x)")
    before, after = timings["step numpy"], timings["step compiled"]
    print(f"    motion step, numpy ops (before) vs compiled blocks (live path): {1000 * before:.3f} vs "
          f"{1000 * after:.3f} ms/frame ({before / after:.2f}x; interleaved frame by frame)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rsatalker_ros.cli.bench_motion", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="", help="model to benchmark (default: the shipped one)")
    ap.add_argument("--ablation", default="runs/motion_shared/model.safetensors",
                    help="no-relationship ablation checkpoint (skipped when missing)")
    ap.add_argument("--data", default="", help="dataset root with train/ and test/ (default: generate a small one)")
    ap.add_argument("--eval-clips", type=int, default=48, help="held-out clips for the quality figures (0 = skip)")
    ap.add_argument("--seconds", type=float, default=20.0, help="audio length for the speed test")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--live-seconds", type=float, default=20.0,
                    help="demo audio for the motion node's per-frame cost breakdown (0 = skip)")
    ap.add_argument("--robustness-clips", type=int, default=0,
                    help="held-out clips per synthesizer for the robustness figures (0 = skip)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from rsatalker_ros.motion.checkpoint import load_model
    rss0 = rss_mb()
    try:
        model, info = load_model(args.checkpoint or None)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    print(f"model: {args.checkpoint or 'shipped default'}; {model.n_parameters() / 1e6:.2f} M parameters; "
          f"look-ahead {model.cfg.lookahead_ms:.1f} ms; torch threads {args.threads}")
    print("\n== live streaming, one participant (batch 1), log-mel extraction included ==")
    for chunk_ms in (20, 40, 80):
        fps, n = bench_streaming(model, args.seconds, chunk_ms, rng)
        flag = "OK " if fps >= 500 else "LOW"
        print(f"  audio chunks of {chunk_ms:3d} ms: {fps:7.0f} frames/s ({n} frames, {fps / 25:.1f}x real time) "
              f"[{flag} target >= 500]")
    if args.live_seconds > 0:
        print("\n== the motion node's per-frame path (MotionStage + its messages, demo audio in 20 ms chunks) ==")
        bench_live_path(args.checkpoint, args.live_seconds, args.threads)
    gc.collect()
    rss1 = rss_mb()
    weights_mb = sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2 ** 20
    print("\n== memory ==")
    print(f"  weights {weights_mb:.1f} MB; process RSS {rss1:.0f} MB (torch and Python included) "
          f"[{'OK ' if rss1 < 300 else 'HIGH'} target: process RSS < 300 MB]; "
          f"added by loading and running the model {rss1 - rss0:.0f} MB")
    if args.robustness_clips > 0:
        print("\n== robustness (issue #12 targets) ==")
        from rsatalker_ros.eval.robustness import RobustnessConfig, evaluate_robustness, make_heldout, targets_table
        cfg = RobustnessConfig(n_clips=args.robustness_clips, n_probe=48)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.time()
            make_heldout(tmp, cfg, progress=False)
            print(targets_table(evaluate_robustness({"model": model}, tmp, cfg, progress=False)))
            print(f"  ({cfg.n_clips} clips per synthesizer, {time.time() - t0:.0f} s)")
    if args.eval_clips <= 0:
        return 0
    print("\n== quality on held-out synthetic conversations ==")
    from rsatalker_ros.eval.evaluate import evaluate, load_models, markdown_table
    models = {"model": model}
    if Path(args.ablation).is_file():
        models.update(load_models([f"no-relation ablation={args.ablation}"]))
    else:
        print(f"  (no ablation at {args.ablation}: train it with scripts/train_default_motion.sh)")
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if not data:
            from rsatalker_ros.data.synthetic import generate_dataset
            data = tmp
            generate_dataset(tmp, 96, 0, args.eval_clips, 12.0, seed=7)
        t0 = time.time()
        res = evaluate(models, data, "test", "train", args.eval_clips, progress=False)
    print(markdown_table(res))
    base = [m for m in res.metrics if m != "model"]
    lve_ok = all(res.metrics["model"]["LVE"] < res.metrics[m]["LVE"] for m in base)
    acc_ok = all(res.relation_acc["model"] > res.relation_acc[m] for m in base)
    print(f"  ({res.n_clips} clips, {time.time() - t0:.0f} s)")
    print(f"  beats {base} on LVE: {'yes' if lve_ok else 'NO'}; on relationship accuracy: "
          f"{'yes' if acc_ok else 'NO'}; relationship accuracy {100 * res.relation_acc['model']:.1f}% "
          f"[{'OK ' if res.relation_acc['model'] >= 0.7 else 'LOW'} target >= 70%]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
