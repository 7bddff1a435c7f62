"""Writes config/<executable>.yaml from the stage config dataclasses (their one source), or checks them.

    python -m rsatalker_ros.stages.write_config            # rewrite config/audio_capture.yaml ... renderer.yaml
    python -m rsatalker_ros.stages.write_config --check    # exit 1 naming each file that differs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rsatalker_ros.stages.capture import CaptureConfig
from rsatalker_ros.stages.conversation import ConversationConfig
from rsatalker_ros.stages.motion import MotionConfig
from rsatalker_ros.stages.params import config_yaml
from rsatalker_ros.stages.render import RenderConfig

RELATION = ("relation_kinship", "relation_hierarchy", "relation_senior", "relation_label")

#: executable -> (config class, header comment, per-node parameters graph.py fills in from graph.yaml)
SECTIONS = {
    "audio_capture": (CaptureConfig, """\
audio_capture: microphone (PortAudio) or wav files -> /rsatalker/<id>/audio (AudioFrame, 16 kHz mono).
ROS 2 parameter file; graph.py fills participants and wav_files from graph.yaml.""", ("participants", "wav_files")),
    "conversation": (ConversationConfig, """\
conversation: every participant's audio -> /rsatalker/conversation (ConversationState) and ROS4HRI
/humans/voices/<id>/is_speaking. graph.py fills participants and relation_* from graph.yaml.""",
                     ("participants",) + RELATION),
    "motion": (MotionConfig, """\
motion (one per participant, named motion_<id>): audio -> SocialMotion, FaceMesh, marker, head pose.
The section applies to every motion node; graph.py adds participant, partner, head, head_position,
head_yaw_deg and relation_* per participant from graph.yaml (and staggers frame_phase_ms).""",
               ("participant", "partner", "head", "head_position", "head_yaw_deg") + RELATION),
    "renderer": (RenderConfig, """\
renderer (one per participant, named renderer_<id>; or one for a list: participants, heads, avatars): the posed
head -> avatar images. The section applies to every renderer; graph.py adds participant, head and avatar per
participant.""",
                 ("participant", "head", "avatar")),
}


def expected(executable: str) -> str:
    cls, header, skip = SECTIONS[executable]
    return config_yaml(executable, cls, header, skip)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config-dir", type=Path, default=Path(__file__).resolve().parents[2] / "config")
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when a file differs")
    args = ap.parse_args(argv)
    stale = []
    for name in SECTIONS:
        path = args.config_dir / f"{name}.yaml"
        text = expected(name)
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run python -m rsatalker_ros.stages.write_config): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
