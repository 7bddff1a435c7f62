"""The renderers can run at a lower CPU priority than capture, conversation and motion (config/graph.yaml
renderer_nice, 0 as shipped): in the graph description, for rsatalker-bringup's processes (each in a session of its own, so the
niceness of its autogroup is what counts) and as the launch files' ``nice`` prefix."""

import os
import shutil
import subprocess
import sys

import pytest

from rsatalker_ros.files import BadFileError
from rsatalker_ros.ros import graph
from rsatalker_ros.ros.priority import autogroup_nice, lower_priority


def test_only_renderers_are_niced_and_never_a_process_with_a_motion_node():
    assert graph.load_graph_config()["renderer_nice"] == 0          # shipped: as the other nodes
    assert all(s.nice == 0 for s in graph.describe())
    specs = graph.describe(participants=["alice", "bob"], processes="separate", renderer_nice=5)
    assert {s.name: s.nice for s in specs} == {"audio_capture": 0, "conversation": 0, "motion_alice": 0,
                                              "renderer_alice": 5, "motion_bob": 0, "renderer_bob": 5}
    assert specs[3].launch_options == {"prefix": "nice -n 5"} and specs[2].launch_options == {}
    for mode in ("per_participant", "single"):     # a renderer sharing its process with motion: normal priority
        groups = graph.groups(graph.describe(participants=["alice", "bob"], processes=mode, renderer_nice=5))
        assert all(graph.group_nice(members) == 0 for members in groups.values()), mode
    with pytest.raises(ValueError, match="renderer_nice 20"):
        graph.describe(renderer_nice=20)


def test_a_bad_renderer_nice_in_graph_yaml_is_refused(tmp_path):
    cfg = tmp_path / "config"
    shutil.copytree(graph.default_config_dir(), cfg)
    text = (cfg / "graph.yaml").read_text()
    (cfg / "graph.yaml").write_text(text.replace("renderer_nice: 0", "renderer_nice: -5"))
    with pytest.raises(BadFileError, match="renderer_nice"):
        graph.describe(config_dir=cfg)


def test_lower_priority_sets_the_process_and_its_own_sessions_autogroup():
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE,
                            start_new_session=True)        # as rsatalker-bringup starts each process
    own = autogroup_nice(os.getpid())
    try:
        assert lower_priority(proc.pid, 7) is None
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == 7
        if own is not None:                                # a kernel with autogroups (most Linux distributions)
            assert autogroup_nice(proc.pid) == 7
            assert autogroup_nice(os.getpid()) == own      # the caller's own session is left alone
    finally:
        proc.stdin.close()
        proc.wait()
    with pytest.raises(ValueError, match="0..19"):
        lower_priority(os.getpid(), -1)
