"""rsatalker-render: a motion sequence -> an mp4 of the Gaussian avatar (audio muxed when given) + a contact sheet.

    python -m rsatalker_ros.cli.render MOTION [--audio speech.wav] [--out clip.mp4] [--sheet clip.png]
        [--head default_older] [--avatar NAME_OR_FILE] [--participant PID] [--mix-audio]
        [--distance 0.62] [--fov 30] [--size 384] [--azimuth 0] [--elevation 5] [--background 1,1,1]
        [--sheet-frames 8] [--max-frames N]

MOTION is a .npy [T, D] in the head's motion layout (D = 64 for the default heads, 25 fps) or a clip folder of the
dataset format (``data/dataset.py``; pick the participant with --participant, default the first; its wav is the
audio unless --audio is given, --mix-audio mixes both participants). The avatar defaults to the shipped avatar
named like the head (rsatalker_ros/assets/avatars/<head>.safetensors). The camera looks at the centre of the
neutral head from ``distance`` metres, ``azimuth`` / ``elevation`` degrees off the front.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rsatalker_ros.avatar.avatar_io import resolve_avatar


def load_motion(path: str, participant: str | None = None, mix_audio: bool = False):
    """(motion [T, D] float32, audio [N] float32 16 kHz or None, head name or None, fps) from a .npy or clip folder."""
    from rsatalker_ros.motion.layout import MOTION_FPS
    p = Path(path)
    if p.is_dir():
        from rsatalker_ros.data.dataset import load_clip
        clip = load_clip(p)
        pid = participant or clip.participants[0]
        if pid not in clip.participants:
            raise ValueError(f"participant {pid!r} is not in clip {clip.clip_id!r}; it has {list(clip.participants)}")
        audio = clip.audio[pid]
        if mix_audio:
            audio = np.clip(sum(clip.audio[q] for q in clip.participants), -1.0, 1.0)
        return clip.motion[pid].astype(np.float32), audio.astype(np.float32), clip.heads.get(pid) or None, clip.fps
    if p.suffix != ".npy" or not p.is_file():
        raise ValueError(f"motion must be a .npy file [T, D] or a clip folder, got {str(p)!r}")
    from rsatalker_ros.files import read_npy
    m = read_npy(p, "motion file (.npy)", max_bytes=1 << 30)
    if m.ndim != 2 or m.shape[0] < 1:
        raise ValueError(f"{p}: motion must be [T, D] with T >= 1, got shape {m.shape}")
    return m.astype(np.float32), None, None, MOTION_FPS


def read_audio(path: str) -> np.ndarray:
    """A wav file -> mono float32 at 16 kHz (resampled if needed)."""
    from rsatalker_ros.data.dataset import read_wav
    from rsatalker_ros.motion.layout import AUDIO_RATE
    x, sr = read_wav(path)
    x = np.asarray(x, np.float32)
    if x.ndim > 1:
        x = x.mean(axis=1)
    if sr != AUDIO_RATE:
        from scipy.signal import resample_poly
        from math import gcd
        g = gcd(int(sr), AUDIO_RATE)
        x = resample_poly(x, AUDIO_RATE // g, int(sr) // g).astype(np.float32)
    return x


def _write_wav(path: Path, x: np.ndarray, rate: int) -> None:
    import wave
    pcm = (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def contact_sheet(frames: list[np.ndarray], indices: list[int], fps: int, path, columns: int = 4) -> None:
    """Grid PNG of uint8 frames [H, W, 3] with each frame's time (s) written in its corner."""
    from PIL import Image, ImageDraw
    h, w = frames[0].shape[:2]
    rows = (len(frames) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * w, rows * h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, (f, i) in enumerate(zip(frames, indices)):
        x, y = (k % columns) * w, (k // columns) * h
        sheet.paste(Image.fromarray(f), (x, y))
        draw.text((x + 4, y + 4), f"{i / fps:.2f} s", fill=(40, 40, 40))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rsatalker-render", description=__doc__.split("\n\n")[0])
    ap.add_argument("motion", help=".npy motion [T, D] or a dataset clip folder")
    ap.add_argument("--audio", default=None, help="wav to mux into the mp4 (default: the clip's audio, if any)")
    ap.add_argument("--out", default="render.mp4", help="output mp4")
    ap.add_argument("--sheet", default=None, help="contact-sheet PNG (default: the mp4's name with .png)")
    ap.add_argument("--head", default=None, help="head model (default: the clip's head or default_older)")
    ap.add_argument("--avatar", default=None, help="avatar .safetensors or shipped name (default: like the head)")
    ap.add_argument("--participant", default=None, help="which participant of a clip folder (default: the first)")
    ap.add_argument("--mix-audio", action="store_true", help="clip folders: mux both participants' audio")
    ap.add_argument("--distance", type=float, default=0.62, help="camera distance from the head centre [m]")
    ap.add_argument("--fov", type=float, default=30.0, help="vertical field of view [deg]")
    ap.add_argument("--size", type=int, default=384, help="image width = height [px] (even)")
    ap.add_argument("--azimuth", type=float, default=0.0, help="camera azimuth off the front [deg]")
    ap.add_argument("--elevation", type=float, default=5.0, help="camera elevation [deg]")
    ap.add_argument("--background", default="1,1,1", help="background rgb in 0..1, e.g. 1,1,1")
    ap.add_argument("--sheet-frames", type=int, default=8, help="frames on the contact sheet")
    ap.add_argument("--max-frames", type=int, default=None, help="render at most this many frames")
    ap.add_argument("--backend", default="cpu", help="renderer backend: cpu | torch | gsplat | auto")
    args = ap.parse_args(argv)
    try:
        return _run(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _run(args) -> int:
    import imageio_ffmpeg
    import torch
    from rsatalker_ros.avatar.gaussians import FastBinder, load_avatar
    from rsatalker_ros.face.head_model import load_head
    from rsatalker_ros.motion.layout import AUDIO_RATE
    from rsatalker_ros.render.api import render_uint8
    from rsatalker_ros.train.stage3 import head_center, orbit_camera

    if args.size < 16 or args.size % 2:
        raise ValueError(f"--size must be an even number >= 16 (the mp4 encoder needs even sizes), got {args.size}")
    bg = [float(x) for x in args.background.split(",")]
    if len(bg) != 3:
        raise ValueError(f"--background must be three numbers r,g,b in 0..1, got {args.background!r}")
    motion, audio, clip_head, fps = load_motion(args.motion, args.participant, args.mix_audio)
    if args.max_frames is not None:
        motion = motion[: max(1, args.max_frames)]
    if args.audio:
        audio = read_audio(args.audio)
    head = load_head(args.head or clip_head or "default_older")
    if motion.shape[1] != head.layout.dim:
        raise ValueError(f"motion has {motion.shape[1]} values per frame; head {head.name!r} expects "
                         f"{head.layout.dim} ({head.layout.basis} layout)")
    avatar = load_avatar(resolve_avatar(args.avatar or head.name), faces=head.faces)
    binder = FastBinder(avatar)
    cam = orbit_camera(head_center(head), args.azimuth, args.elevation, args.distance, args.size, args.fov)
    n = motion.shape[0]
    picks = sorted(set(np.linspace(0, n - 1, min(args.sheet_frames, n)).round().astype(int).tolist()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        audio_path = None
        if audio is not None and len(audio):
            audio = audio[: int(round(n * AUDIO_RATE / fps))]  # cut to the video's length
            audio_path = str(Path(tmp) / "audio.wav")
            _write_wav(Path(audio_path), audio, AUDIO_RATE)
        writer = imageio_ffmpeg.write_frames(str(out), (args.size, args.size), fps=fps, codec="libx264",
                                             macro_block_size=2, audio_path=audio_path,
                                             audio_codec="aac" if audio_path else None,
                                             output_params=["-shortest"] if audio_path else None)
        writer.send(None)
        sheet = []
        with torch.no_grad():
            for start in tqdm(range(0, n, 64), desc="render", unit="x64 frames"):
                verts = head.from_motion(torch.from_numpy(motion[start:start + 64]))
                for k in range(verts.shape[0]):
                    img = render_uint8(binder(verts[k]), cam, bg, backend=args.backend)
                    writer.send(np.ascontiguousarray(img))
                    if start + k in picks:
                        sheet.append(img)
        writer.close()
    sheet_path = Path(args.sheet) if args.sheet else out.with_suffix(".png")
    contact_sheet(sheet, picks, fps, sheet_path)
    print(f"wrote {out} ({n} frames at {fps} fps{', with audio' if audio_path else ''}) and {sheet_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
