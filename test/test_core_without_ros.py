"""The core library (everything but nodes/ and ros/) imports and works on a machine without ROS 2."""

import os
import pkgutil
import subprocess
import sys

from support.processes import REPO

ROS_ONLY = ("rsatalker_ros.nodes", "rsatalker_ros.ros", "rsatalker_ros.msg")


def core_modules():
    names = []
    for info in pkgutil.walk_packages([os.path.join(REPO, "rsatalker_ros")], "rsatalker_ros."):
        if not info.name.startswith(ROS_ONLY):
            names.append(info.name)
    return names


def test_core_imports_without_rclpy():
    modules = core_modules()
    assert "rsatalker_ros.social.relation" in modules and "rsatalker_ros.motion.layout" in modules
    code = ("import importlib, sys\n"
            f"mods = {modules!r}\n"
            "for m in mods:\n"
            "    if m.startswith('rsatalker_ros.cli.'): continue  # CLIs may parse argv at import\n"
            "    importlib.import_module(m)\n"
            "bad = sorted(k for k in sys.modules if k == 'rclpy' or k.startswith('rclpy.'))\n"
            "assert not bad, bad\n"
            "print('ok', len(mods))\n")
    # A Python that cannot see ROS at all: no AMENT/colcon paths, and rclpy blocked even if installed.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMENT", "COLCON", "ROS_"))}
    env["PYTHONPATH"] = os.path.join(REPO, "test", "support", "no_rclpy") + os.pathsep + REPO
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("ok")


def test_relation_parsing_rejects_unknown_values():
    from rsatalker_ros.social.relation import Direction, Relation
    rel = Relation.parse("blood", "unequal", senior="mom", label="mother-daughter")
    assert rel.class_index == 1
    assert rel.direction_for("mom") == Direction.SENIOR and rel.direction_for("kid") == Direction.JUNIOR
    assert rel.query_index_for("mom") != rel.query_index_for("kid")
    import pytest
    with pytest.raises(ValueError, match="unknown kinship 'cousinish'"):
        Relation.parse("cousinish", "equal")
    with pytest.raises(ValueError, match="needs the id of the senior"):
        Relation.parse("non-blood", "unequal")
