"""Run several rsatalker_ros nodes in one process on a MultiThreadedExecutor (a component container).

    python -m rsatalker_ros.nodes.container motion:motion_alice renderer:renderer_alice \
        --ros-args --params-file graph_params.yaml

Each positional argument is <executable>:<node name>; parameters come from the params file by node name.
"""

import functools
import importlib
import sys

from rclpy.utilities import remove_ros_args

from rsatalker_ros.ros.spin import run

CLASSES = {"audio_capture": "AudioCaptureNode", "conversation": "ConversationNode", "motion": "MotionNode",
           "renderer": "RendererNode"}


def node_factory(executable: str, name: str):
    if executable not in CLASSES:
        raise SystemExit(f"unknown node executable {executable!r}; expected one of {sorted(CLASSES)}")
    cls = getattr(importlib.import_module(f"rsatalker_ros.nodes.{executable}"), CLASSES[executable])
    return functools.partial(cls, name)


def main(args=None):
    argv = sys.argv if args is None else args
    specs = [a.split(":", 1) for a in remove_ros_args(argv)[1:]]
    if not specs or any(len(s) != 2 for s in specs):
        raise SystemExit("usage: python -m rsatalker_ros.nodes.container <executable>:<name> ... --ros-args ...")
    raise SystemExit(run([node_factory(e, n) for e, n in specs], argv, multithreaded=len(specs) > 1))


if __name__ == "__main__":
    main()
