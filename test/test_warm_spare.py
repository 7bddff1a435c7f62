"""rsatalker_ros.ros.warm_spare: the pre-imported process rsatalker-bringup respawns a dead node group in."""

import json
import os
import sys

import pytest

from support.processes import child_env

PROBE = """import json, sys
print(json.dumps({"argv": sys.argv[1:], "preloaded": [m in sys.modules for m in ("torch", "numba", "rclpy",
                  "rsatalker_ros.nodes.motion", "rsatalker_ros.nodes.renderer")]}))
sys.exit(3)
"""


def test_a_spare_runs_the_command_it_is_given_with_the_node_modules_already_imported(tmp_path):
    from rsatalker_ros.ros.warm_spare import WarmSpare
    (tmp_path / "spare_probe.py").write_text(PROBE)
    env = child_env()
    env["PYTHONPATH"] = str(tmp_path) + os.pathsep + env["PYTHONPATH"]
    spare = WarmSpare.start(env, str(tmp_path))
    log = tmp_path / "group.log"
    log.write_text("earlier run\n")
    assert spare.usable()
    proc = spare.become([sys.executable, "-m", "spare_probe", "motion:motion_alice", "--ros-args"], str(log))
    assert proc.wait(120) == 3                               # the command's own exit code, seen by the supervisor
    lines = log.read_text().splitlines()
    assert lines[0] == "earlier run"                         # appended to the group's log, as a new process would
    report = json.loads(lines[-1])
    assert report == {"argv": ["motion:motion_alice", "--ros-args"], "preloaded": [True] * 5}
    assert os.path.exists(spare.ready_path)                  # it said so once it had warmed up


def test_an_unused_spare_ends_when_the_supervisor_stops_it(tmp_path):
    from rsatalker_ros.ros.warm_spare import WarmSpare
    spare = WarmSpare.start(child_env(), str(tmp_path))
    spare.stop()                                             # (closes its stdin: it ends even while importing)
    assert spare.proc.poll() is not None and not spare.usable()


def test_bootstrap_compiles_the_render_kernels_and_fails_loudly_when_it_cannot(monkeypatch, capsys):
    """scripts/bootstrap.sh step 6 runs compile_kernels_main: exit code 0 once the kernels are compiled (or loaded
    from their cache); when the warm-up render fails, exit code 1 and the reason on stderr (warm_up, which the
    bootstrap used before, swallowed it: the bootstrap then went on as if the kernels were compiled). The spare's
    warm_up still only says so: there it merely costs the respawn time."""
    from rsatalker_ros.ros import warm_spare
    from rsatalker_ros.stages.render import RenderStage
    assert warm_spare.compile_kernels_main() == 0
    with open(os.path.join(os.path.dirname(__file__), "..", "scripts", "bootstrap.sh")) as f:
        assert "sys.exit(compile_kernels_main())" in f.read()

    def broken(self, renderer):
        raise RuntimeError("warm-up render failed: no tile kernel")
    monkeypatch.setattr(RenderStage, "_warm_up", broken)
    capsys.readouterr()
    assert warm_spare.compile_kernels_main() == 1
    err = capsys.readouterr().err
    assert "compiling the numba kernels failed: RuntimeError" in err and "no tile kernel" in err
    warm_spare.warm_up()
    assert "warm spare: warm-up failed" in capsys.readouterr().err


def test_a_bad_order_is_refused_with_the_reason():
    """The spare's one line from the supervisor: anything but {"argv": [python, "-m", module, ...], "log": path or
    null} is refused naming what is wrong (main() then exits with code 2 instead of a traceback)."""
    from rsatalker_ros.ros.warm_spare import parse_order
    argv = [sys.executable, "-m", "rsatalker_ros.nodes.container", "motion:motion_alice"]
    assert parse_order(json.dumps({"argv": argv, "log": None})) == (argv, None)
    assert parse_order(json.dumps({"argv": argv, "log": "/tmp/g.log"})) == (argv, "/tmp/g.log")
    for line, why in (("motion_alice\n", "not JSON"), ("[1, 2]", "JSON object"), ('{"log": null}', "JSON object"),
                      (json.dumps({"argv": [sys.executable, "script.py", "x"]}), "python -m module"),
                      (json.dumps({"argv": "python -m x"}), "list of strings"),
                      (json.dumps({"argv": [sys.executable, "-m", 3]}), "list of strings"),
                      (json.dumps({"argv": argv, "log": 5}), "log must be a file path")):
        with pytest.raises(ValueError, match=why):
            parse_order(line)
