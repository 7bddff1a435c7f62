"""rsatalker-demo: two avatars talk and listen to each other, over the real ROS 2 graph in real time.

    python -m rsatalker_ros.cli.demo --kinship blood --hierarchy unequal --senior alice --label mother-son

Starts the full graph (rsatalker-bringup's processes) on the two bundled wav files of a short multi-turn
conversation (rsatalker_ros/assets/demo/, one speaker each), records both image topics, and writes
  <out>/demo.mp4            side by side (alice | bob), 25 fps on the audio clock, the conversation muxed in stereo;
  <out>/contact_sheet.png   moments across the conversation, speaker marked;
then prints every topic's rate and the latency from the audio stamp to the image's arrival (p50 / p95).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEMO_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo"


class DiskRecorder:
    """Appends every received rgb8 image of one participant to a raw file (stamp index kept in memory)."""

    def __init__(self, folder: Path, pid: str):
        self.path = folder / f"{pid}.raw"
        self.f = open(self.path, "wb")
        self.stamps: list[int] = []
        self.shape = None

    def add(self, msg) -> None:
        from rsatalker_ros.ros.convert import stamp_to_ns
        if msg.encoding != "rgb8" or msg.step != msg.width * 3:
            return
        self.shape = (msg.height, msg.width, 3)
        self.f.write(bytes(msg.data))
        self.stamps.append(stamp_to_ns(msg.header.stamp))

    def close(self) -> None:
        self.f.close()

    def frames(self) -> np.memmap | None:
        if not self.stamps:
            return None
        return np.memmap(self.path, np.uint8, "r", shape=(len(self.stamps),) + self.shape)


def timeline(stamps: list[int], t0: int, n: int, fps: float = 25.0) -> np.ndarray:
    """For each output frame k (audio time t0 + k / fps): index of the newest image stamped at or before it
    (-1 before the first). This is what a display that shows the newest frame would show."""
    s = np.asarray(stamps, np.int64)
    order = np.argsort(s, kind="stable")
    t = t0 + (np.arange(n) * 1e9 / fps).astype(np.int64)
    pos = np.searchsorted(s[order], t, side="right") - 1
    return np.where(pos >= 0, order[np.clip(pos, 0, None)], -1)


def compose(frames: dict, idx: dict, k: int, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    tiles = []
    for pid, fr in frames.items():
        i = idx[pid][k]
        tiles.append(np.asarray(fr[i]) if fr is not None and i >= 0 else np.full((h, w, 3), 255, np.uint8))
    return np.concatenate(tiles, axis=1)


def write_video(path: Path, frames: dict, idx: dict, n: int, size, audio_wav: Path) -> None:
    import imageio_ffmpeg
    from tqdm import tqdm
    h, w = size
    writer = imageio_ffmpeg.write_frames(str(path), (w * len(frames), h), fps=25, codec="libx264", quality=None,
                                         bitrate="2M", macro_block_size=16, audio_path=str(audio_wav),
                                         audio_codec="aac", output_params=["-preset", "veryfast", "-shortest"],
                                         ffmpeg_log_level="error")
    writer.send(None)
    for k in tqdm(range(n), desc="demo.mp4", unit="frame", leave=False):
        writer.send(np.ascontiguousarray(compose(frames, idx, k, size)))
    writer.close()


def contact_sheet(path: Path, frames: dict, idx: dict, n: int, size, turns: list, names: dict, cols: int = 4,
                  rows: int = 2) -> None:
    from PIL import Image, ImageDraw
    h, w = size
    scale = 0.5 if w >= 384 else 1.0
    tw, th = int(w * scale) * len(frames), int(h * scale)
    sheet = Image.new("RGB", (cols * tw, rows * (th + 22)), "white")
    draw = ImageDraw.Draw(sheet)
    # moments in the middle of each turn (then evenly spaced), so both speaking and listening show
    moments = [k for k in (int((t["start_s"] + t["end_s"]) / 2 * 25) for t in turns) if k < n][:cols * rows]
    spread = [int(n * (j + 0.5) / (cols * rows)) for j in range(cols * rows)]
    moments = sorted(moments + [k for k in spread if k not in moments][:cols * rows - len(moments)])
    for j, k in enumerate(moments):
        k = min(max(k, 0), n - 1)
        tile = Image.fromarray(compose(frames, idx, k, size)).resize((tw, th))
        x, y = (j % cols) * tw, (j // cols) * (th + 22)
        sheet.paste(tile, (x, y + 22))
        speaker = next((names.get(t["speaker"], t["speaker"]) for t in turns
                        if t["start_s"] <= k / 25 <= t["end_s"]), "-")
        draw.text((x + 6, y + 5), f"t = {k / 25:5.1f} s   speaking: {speaker}", fill="black")
    sheet.save(path)


def write_gif(path: Path, frames: dict, idx: dict, n: int, size, start_s: float = 0.0, seconds: float = 6.0,
              fps: float = 8.33, width: int = 448) -> None:
    """A short animated GIF of the side-by-side view (for the README), ``fps`` frames per second."""
    from PIL import Image
    step = max(1, int(round(25 / fps)))
    ks = range(int(start_s * 25), min(n, int((start_s + seconds) * 25)), step)
    h, w = size
    scale = width / (w * len(frames))
    imgs = [Image.fromarray(compose(frames, idx, k, size)).resize((width, int(h * scale))) for k in ks]
    imgs = [im.convert("P", palette=Image.Palette.ADAPTIVE, colors=96) for im in imgs]
    imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=int(1000 * step / 25), loop=0,
                 optimize=True)


def run_demo(args) -> dict:
    import rclpy

    from rsatalker_ros.audio.ring_buffer import resample
    from rsatalker_ros.audio.wav_io import read_wav
    from rsatalker_ros.cli.bringup import Graph, render_overrides
    from rsatalker_ros.ros import graph, topics
    from rsatalker_ros.ros.dds import local_dds_defaults
    from rsatalker_ros.ros.probe import GraphProbe, format_summary
    from sensor_msgs.msg import Image

    meta = json.loads((DEMO_DIR / "conversation.json").read_text())
    wavs = [str(DEMO_DIR / meta["files"]["A"]), str(DEMO_DIR / meta["files"]["B"])]
    pids = ["alice", "bob"]
    overrides = render_overrides(pids, args.size, args.checkpoint, args.avatars)
    specs = graph.describe(participants=pids, kinship=args.kinship, hierarchy=args.hierarchy, senior=args.senior,
                           label=args.label, source="wav", wav_files=wavs, processes=args.processes,
                           overrides=overrides)
    rel = next(s for s in specs if s.executable == "motion").parameters
    print(f"relationship: {rel['relation_kinship']} / {rel['relation_hierarchy']}"
          f"{' (senior: ' + rel['relation_senior'] + ')' if rel['relation_senior'] else ''}"
          f"{' ' + repr(rel['relation_label']) if rel['relation_label'] else ''}", flush=True)
    audio = [read_wav(w) for w in wavs]
    seconds = min(args.seconds or 1e9, audio[0][0].shape[0] / audio[0][1])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="rsatalker_demo_"))
    local_dds_defaults()
    rclpy.init()
    probe = GraphProbe(pids, keep_messages=False)
    rec = {p: DiskRecorder(tmp, p) for p in pids}
    for p in pids:
        probe.create_subscription(Image, topics.participant(p, "image_raw"), rec[p].add, 10)
    g = Graph(specs, log_dir=str(out / "logs"))
    try:
        t_start = time.monotonic()
        if args.processes == "single":
            g.start()
        else:
            g.start(skip=[g.audio_group()])
            print("starting the graph (motion and renderer nodes first) ...", flush=True)
            if not probe.spin_for(120, probe.graph_ready):
                raise RuntimeError(f"the motion and renderer nodes did not start; see {out / 'logs'}")
            g.start_group(g.audio_group())
        print(f"graph up after {time.monotonic() - t_start:.1f} s; playing {seconds:.1f} s of conversation "
              "in real time ...", flush=True)
        first = time.monotonic()
        while time.monotonic() - first < seconds + 1.5:
            probe.spin_for(0.5)
            if not all(g.alive().values()):
                raise RuntimeError(f"a graph process died: {g.alive()}; see {out / 'logs'}")
        summary = probe.summary(skip_s=2.0)
        publish = {p: probe.publish_latency(p, since=2) for p in pids}
    finally:
        g.stop()
        for r in rec.values():
            r.close()
        probe.destroy_node()
        rclpy.try_shutdown()

    print("\nper-topic rates and latency (audio stamp -> arrival at the recorder):")
    print(format_summary(summary))
    frames = {p: rec[p].frames() for p in pids}
    if any(f is None for f in frames.values()):
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"no images from {[p for p, f in frames.items() if f is None]}; see {out / 'logs'}")
    motion_t0 = [m for m in (probe.logs[topics.participant(p, 'motion')].stamp_ns for p in pids) if m]
    t0 = min(min(m) for m in motion_t0) - 20_000_000          # audio clock of the first sample
    n = int(seconds * 25)
    idx = {p: timeline(rec[p].stamps, t0, n) for p in pids}
    size = (args.size, args.size)
    from scipy.io import wavfile
    mix = np.stack([resample(a[:, 0], r) for a, r in audio], 1)[:int(seconds * 16000)]
    wavfile.write(tmp / "mix.wav", 16000, (np.clip(mix, -1, 1) * 32767).astype(np.int16))
    write_video(out / "demo.mp4", frames, idx, n, size, tmp / "mix.wav")
    contact_sheet(out / "contact_sheet.png", frames, idx, n, size, meta["turns"], {"A": "alice", "B": "bob"})
    if args.docs:
        docs = Path(args.docs)
        docs.mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "contact_sheet.png", docs / "demo_contact_sheet.png")
        write_gif(docs / "demo.gif", frames, idx, n, size, start_s=3.0, seconds=4.0)
        print(f"wrote {docs / 'demo_contact_sheet.png'} and {docs / 'demo.gif'}")
    shown = {p: int((idx[p] >= 0).sum()) for p in pids}
    shutil.rmtree(tmp, ignore_errors=True)
    img = {p: summary[topics.participant(p, "image_raw")] for p in pids}
    print(f"\nwrote {out / 'demo.mp4'} ({n} frames, audio muxed) and {out / 'contact_sheet.png'}")
    for p in pids:
        print(f"{p}: image_raw {img[p]['rate_hz']:.1f} Hz; audio stamp -> image publish p50 {publish[p][0]:.0f} ms, "
              f"p95 {publish[p][1]:.0f} ms (renderer), -> arrival here p50 {img[p]['latency_ms_p50']:.0f} ms, "
              f"p95 {img[p]['latency_ms_p95']:.0f} ms; {len(rec[p].stamps)} images, {shown[p]}/{n} video frames")
    return summary


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinship", default="blood", help="blood or non_blood (default blood)")
    ap.add_argument("--hierarchy", default="unequal", help="equal or unequal (default unequal)")
    ap.add_argument("--senior", default="alice", help="senior participant when unequal (default alice)")
    ap.add_argument("--label", default="mother-son", help="relationship label")
    ap.add_argument("--seconds", type=float, default=0.0, help="play only this much of the conversation [s]")
    ap.add_argument("--size", type=int, default=512, help="image width = height [px]")
    ap.add_argument("--processes", default="separate", choices=["separate", "per_participant", "single"])
    ap.add_argument("--checkpoint", default="", help="motion checkpoint (default: the shipped one)")
    ap.add_argument("--avatars", nargs=2, help="avatar files for alice and bob (default: the shipped ones)")
    ap.add_argument("--out", default="runs/demo", help="output folder")
    ap.add_argument("--docs", default="", help="also write demo_contact_sheet.png and demo.gif there "
                    "(docs/images for the README)")
    args = ap.parse_args(argv)
    if args.hierarchy == "equal" and args.senior == "alice":
        args.senior = ""
    try:
        run_demo(args)
    except (RuntimeError, ValueError) as err:
        print(f"demo failed: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
