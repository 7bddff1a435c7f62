"""rsatalker-make-demo-audio: write the bundled demo conversation (two wav files, one per participant).

A short multi-turn conversation between two espeak-ng voices (a parent and an adult child, i.e. blood/unequal with
A senior): each file is 16 kHz mono 16-bit PCM holding one participant's speech, silent while the other speaks,
both the same length (a whole number of 40 ms frames). Fixed text, voices and gaps: rerunning gives the same files
(for the same espeak-ng version). Also writes conversation.json with the turn times.

    python -m rsatalker_ros.cli.make_demo_audio [--out rsatalker_ros/assets/demo]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from rsatalker_ros.motion.layout import AUDIO_RATE, SAMPLES_PER_FRAME

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "assets" / "demo"

VOICES = {
    "A": dict(language="en-gb-x-rp", variant="f2", rate=150, pitch=45, pitch_range=55),   # the parent
    "B": dict(language="en-us", variant="m3", rate=170, pitch=50, pitch_range=60),        # the adult child
}
# (speaker, text, silence after the previous turn's speech in seconds; negative = overlap)
SCRIPT = (
    ("A", "Hello, love. How was your first week at the new job?", 0.4),
    ("B", "It was good, thanks. A bit tiring, but everyone has been really friendly.", 0.35),
    ("A", "That is wonderful to hear. Are you eating properly?", 0.3),
    ("B", "Yes, mum. I even cooked on Wednesday.", 0.25),
    ("A", "Really? What did you make?", 0.2),
    ("B", "Pasta with vegetables. Nothing fancy, but it was nice.", 0.3),
    ("A", "Well, come home on Sunday and I will make your favourite.", 0.45),
    ("B", "Mm, yes please. I will bring dessert.", 0.2),
)
RELATION = {"kinship": "blood", "hierarchy": "unequal", "senior": "A", "label": "mother-son"}
FILES = {"A": "speaker_a.wav", "B": "speaker_b.wav"}


def build_demo() -> tuple[dict[str, np.ndarray], list[dict]]:
    """The two tracks ([N] float32 each, N a multiple of 640) and the turn list."""
    from rsatalker_ros.data.espeak import Voice, synthesize
    utts, turns = [], []
    cursor = 0
    for spk, text, gap in SCRIPT:
        u = synthesize(text, Voice(**VOICES[spk]))
        speech = [p for p in u.phonemes if not p.is_pause]
        lead, tail = (speech[0].start, speech[-1].end) if speech else (0, u.wave.shape[0])
        start = max(0, cursor + int(gap * AUDIO_RATE) - lead)
        utts.append((spk, start, u.wave))
        turns.append({"speaker": spk, "text": text, "start_s": round((start + lead) / AUDIO_RATE, 3),
                      "end_s": round((start + tail) / AUDIO_RATE, 3)})
        cursor = start + tail
    n = cursor + int(0.6 * AUDIO_RATE)
    n = -(-n // SAMPLES_PER_FRAME) * SAMPLES_PER_FRAME
    tracks = {p: np.zeros(n, np.float32) for p in VOICES}
    for spk, start, w in utts:
        end = min(n, start + w.shape[0])
        tracks[spk][start:end] += 0.8 * w[: end - start]
    return {p: np.clip(x, -1, 1) for p, x in tracks.items()}, turns


def write_demo(out: str | Path = DEFAULT_OUT) -> list[Path]:
    import wave
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tracks, turns = build_demo()
    paths = []
    for pid, x in tracks.items():
        p = out / FILES[pid]
        with wave.open(str(p), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(AUDIO_RATE)
            w.writeframes(np.clip(np.round(x * 32767), -32768, 32767).astype("<i2").tobytes())
        paths.append(p)
    n = next(iter(tracks.values())).shape[0]
    meta = {"sample_rate": AUDIO_RATE, "seconds": n / AUDIO_RATE, "files": FILES, "relation": RELATION,
            "voices": VOICES, "turns": turns}
    (out / "conversation.json").write_text(json.dumps(meta, indent=1))
    paths.append(out / "conversation.json")
    return paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output folder")
    args = ap.parse_args(argv)
    for p in write_demo(args.out):
        print(f"wrote {p} ({p.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
