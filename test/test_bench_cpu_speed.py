"""bench-graph --cpu-speed: the CFS quota for slower cores, the checks of its arguments, the error when no CPU cgroup
is writable, and (as root, where cgroup v1's or v2's cpu controller is writable) a real group that children are
born in, that throttles, and that is removed afterwards."""

import os
import subprocess
import sys

import pytest

from rsatalker_ros.cli.cpu_speed import (CgroupUnavailable, CpuGroup, cfs_quota, find_parent, format_throttling,
                                         own_cgroups, parse_mounts)

MOUNTS_V1 = """sysfs /sys sysfs rw,nosuid 0 0
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup {v1} cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup2 {v2} cgroup2 rw,relatime 0 0
"""
OWN = "4:memory:/job\n1:cpu:/\n0::/\n"


def test_quota_is_speed_times_cores_times_period():
    assert cfs_quota(0.5, 2, 5000).quota_us == 5000          # 2 cores at half speed: one core's time per period
    assert cfs_quota(0.5, 1, 10000).quota_us == 5000
    assert cfs_quota(1.0, 2, 10000).quota_us == 20000
    assert cfs_quota(0.25, 4, 2000).quota_us == 2000


@pytest.mark.parametrize("speed, cores, period_us, match", [
    (0.0, 2, 5000, r"--cpu-speed 0: expected .*\(0, 1\]"), (1.5, 2, 5000, r"--cpu-speed 1.5"),
    (-0.5, 1, 5000, r"--cpu-speed -0.5"), (0.5, 1, 500, r"--cpu-period-ms 0.5: expected 1..1000"),
    (0.5, 1, 2_000_000, r"--cpu-period-ms 2000"), (0.1, 1, 5000, r"quota of 500 us; the kernel needs >= 1000"),
    (0.5, 0, 5000, r"cores 0")])
def test_bad_values_are_refused_naming_the_option(speed, cores, period_us, match):
    with pytest.raises(ValueError, match=match):
        cfs_quota(speed, cores, period_us)


def test_mounts_and_own_groups_are_parsed():
    mounts = parse_mounts(MOUNTS_V1.format(v1="/sys/fs/cgroup/cpu", v2="/sys/fs/cgroup/unified"))
    assert mounts == [("/sys/fs/cgroup/cpu", "cgroup", {"rw", "relatime", "cpu"}),
                      ("/sys/fs/cgroup/memory", "cgroup", {"rw", "relatime", "memory"}),
                      ("/sys/fs/cgroup/unified", "cgroup2", {"rw", "relatime"})]
    assert own_cgroups(OWN) == {"cpu": "/", "v2": "/"}
    assert own_cgroups("2:cpu,cpuacct:/a/b\n") == {"cpu": "/a/b"}


def test_no_usable_controller_gives_an_error_naming_what_is_missing(tmp_path):
    v2 = tmp_path / "unified"
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("memory pids\n")
    v1 = tmp_path / "cpu"
    v1.mkdir()                                         # a folder without the CFS files
    mounts = parse_mounts(MOUNTS_V1.format(v1=v1, v2=v2))
    with pytest.raises(CgroupUnavailable) as err:
        find_parent(mounts, own_cgroups(OWN))
    text = str(err.value)
    assert text.startswith("--cpu-speed needs a writable CPU cgroup")
    assert f"cgroup v2 at {v2}: no cpu controller" in text and "it has: memory pids" in text
    assert f"cgroup v1 cpu controller at {v1}/: no cpu.cfs_period_us, cpu.cfs_quota_us, cgroup.procs" in text
    with pytest.raises(CgroupUnavailable, match="no hierarchy with the cpu controller is mounted.*v2: not mounted"):
        find_parent(parse_mounts("cgroup /x cgroup rw,memory 0 0\n"), {})


def test_the_v2_hierarchy_is_preferred_when_it_has_the_cpu_controller(tmp_path):
    v2 = tmp_path / "unified"
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("cpuset cpu io memory\n")
    v1 = tmp_path / "cpu"
    v1.mkdir()
    for f in ("cpu.cfs_period_us", "cpu.cfs_quota_us", "cgroup.procs"):
        (v1 / f).write_text("")
    mounts = parse_mounts(MOUNTS_V1.format(v1=v1, v2=v2))
    if not os.access(v2, os.W_OK):
        pytest.skip("the test's own folders are not writable")
    assert find_parent(mounts, {"v2": "/user/job", "cpu": "/"}) == ("v2", str(v2), f"{v2}/user/job")
    (v2 / "cgroup.controllers").write_text("memory\n")
    assert find_parent(mounts, own_cgroups(OWN)) == ("v1", f"{v1}/", f"{v1}/")


def test_throttling_line():
    line = format_throttling({"periods": 100, "throttled": 10, "throttled_s": 1.0},
                             {"periods": 300, "throttled": 60, "throttled_s": 1.5}, 20.0)
    assert line.startswith("throttled in 50 of 200 periods (25 %), 0.50 s")


def _real_group_or_skip(speed, cores, period_us):
    try:
        return CpuGroup.create(speed, cores, period_us)
    except CgroupUnavailable as e:
        pytest.skip(f"no writable CPU cgroup here: {e}")


def test_a_real_group_holds_the_children_started_in_it_throttles_them_and_is_removed():
    group = _real_group_or_skip(0.5, 1, 2000)
    try:
        with open(os.path.join(group.path, "cpu.max" if group.version == "v2" else "cpu.cfs_quota_us")) as f:
            assert f.read().split()[0] == "1000"
        with group.entered():
            child = subprocess.Popen([sys.executable, "-c", "import time\nt = time.process_time()\n"
                                      "while time.process_time() - t < 0.3: pass\nprint(open('/proc/self/cgroup')"
                                      ".read())"], stdout=subprocess.PIPE, text=True)
        mine = open("/proc/self/cgroup").read()
        assert os.path.basename(group.path) not in mine            # the launcher is back home
        out = child.communicate(timeout=60)[0]
        assert os.path.basename(group.path) in out                  # the child was born in the group
        stat = group.stat()
        assert stat["throttled"] > 0 and stat["throttled_s"] > 0     # 0.3 s of CPU at 1 ms per 2 ms
        group.set_weight(3)
    finally:
        group.remove()
    assert not os.path.exists(group.path)
    group.remove()                                                  # twice is fine


def test_removing_a_group_moves_what_still_runs_in_it_back_home():
    """Cleanup after an error or Ctrl-C: a process still in the group is moved out, then the group is removed."""
    group = _real_group_or_skip(0.5, 1, 10000)
    try:
        with group.entered():
            child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
        assert group.procs() == [child.pid]
        group.remove()
        assert not os.path.exists(group.path)
        with open(f"/proc/{child.pid}/cgroup") as f:
            assert os.path.basename(group.path) not in f.read()
    finally:
        child.communicate(b"", timeout=30)
        group.remove()


def test_bench_graph_refuses_a_bad_speed_before_starting_anything(monkeypatch):
    from rsatalker_ros.cli.bench_graph import main
    monkeypatch.setenv("ROS_DOMAIN_ID", os.environ.get("ROS_DOMAIN_ID", "0"))   # main sets it: restored afterwards
    with pytest.raises(SystemExit, match=r"error: --cpu-speed 0: expected a fraction"):
        main(["--cpu-speed", "0", "--domain-id", "77"])
    with pytest.raises(SystemExit, match=r"--cpu-period-ms 0.5: expected 1..1000 ms"):
        main(["--cpu-speed", "0.5", "--cpu-period-ms", "0.5", "--domain-id", "77"])
