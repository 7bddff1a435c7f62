"""Across machines (issue #11): the graph split over two network namespaces joined by one veth pair, as a kiosk and
an avatar server would be. The kiosk namespace runs audio_capture, conversation and a display (a process watching
alice's images); the avatar namespace runs motion_alice and renderer_alice. Audio and the conversation state
cross the link one way, images the other. The link is cut for 5 s and restored: images stop while it is down
(so they really travel over it) and come back by themselves, every node still the same process (no restarts)
and none of them holding more memory than before the cut.

DDS here: ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET (LOCALHOST would never cross the link) and a Fast DDS profile with
UDPv4 only, no shared memory (both namespaces see the same /dev/shm: only the link may carry data; the check that
no image arrives while it is down would notice otherwise). Each namespace holds only its loopback and its end of
the veth pair, so discovery (multicast on the link) and data go nowhere else. The wav source loops alice's demo
file; one process per "machine" (processes: per_participant), 64 x 64 images at one level of detail.

Needs root and iproute2 (`ip netns`); skipped with the reason otherwise.
"""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass

import pytest
import yaml

from support.processes import REPO, child_env, spawn

pytestmark = pytest.mark.ros

KIOSK_IP, AVATAR_IP = "10.213.0.1", "10.213.0.2"     # a private /30 that exists only inside the two namespaces
CUT_S = 5.0                                          # how long the link is down (the scenario, not a wait)
HANG_S = 240.0                                       # bounds that only fail on a hang (start-up included)
RSS_TOLERANCE_MB = 40.0     # RSS after recovery may exceed RSS before the cut by this (seen: 0-23 MB, the motion +
                            # renderer process, whose heap is trimmed only every 10 s; issue #11's failures held 50-240 MB)

UDP_ONLY_PROFILE = """<?xml version="1.0" encoding="UTF-8" ?>
<!-- Fast DDS for the namespace test: UDPv4 only (no shared memory, which would bypass the veth link). -->
<dds xmlns="http://www.eprosima.com">
  <profiles>
    <transport_descriptors>
      <transport_descriptor>
        <transport_id>udp_only</transport_id>
        <type>UDPv4</type>
      </transport_descriptor>
    </transport_descriptors>
    <participant profile_name="netns_udp_only" is_default_profile="true">
      <rtps>
        <userTransports><transport_id>udp_only</transport_id></userTransports>
        <useBuiltinTransports>false</useBuiltinTransports>
      </rtps>
    </participant>
  </profiles>
</dds>
"""


def ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


@dataclass
class Link:
    kiosk: str          # namespace names
    avatar: str
    kiosk_dev: str      # the veth ends inside them
    avatar_dev: str

    def set(self, up: bool) -> None:
        """Take the kiosk's end of the link down (its peer loses carrier) or bring it back up."""
        r = ip("-n", self.kiosk, "link", "set", self.kiosk_dev, "up" if up else "down")
        assert r.returncode == 0, r.stderr


@pytest.fixture
def link():
    """Two namespaces with a veth pair between them (KIOSK_IP <-> AVATAR_IP), removed afterwards even on failure."""
    if os.geteuid() != 0:
        pytest.skip("creating network namespaces needs root")
    if shutil.which("ip") is None:
        pytest.skip("iproute2's `ip` is not installed")
    tag = uuid.uuid4().hex[:6]                           # unique per run: parallel runs never share a namespace
    lk = Link(f"rsat_kiosk_{tag}", f"rsat_avatar_{tag}", f"rsk{tag}", f"rsa{tag}")
    created = []
    try:
        for ns in (lk.kiosk, lk.avatar):
            r = ip("netns", "add", ns)
            if r.returncode != 0:
                pytest.skip(f"`ip netns add` failed, network namespaces cannot be created here: {r.stderr.strip()}")
            created.append(ns)
        steps = [("link", "add", lk.kiosk_dev, "type", "veth", "peer", "name", lk.avatar_dev),
                 ("link", "set", lk.kiosk_dev, "netns", lk.kiosk),
                 ("link", "set", lk.avatar_dev, "netns", lk.avatar),
                 ("-n", lk.kiosk, "addr", "add", f"{KIOSK_IP}/30", "dev", lk.kiosk_dev),
                 ("-n", lk.avatar, "addr", "add", f"{AVATAR_IP}/30", "dev", lk.avatar_dev),
                 ("-n", lk.kiosk, "link", "set", "lo", "up"), ("-n", lk.avatar, "link", "set", "lo", "up"),
                 ("-n", lk.kiosk, "link", "set", lk.kiosk_dev, "up"),
                 ("-n", lk.avatar, "link", "set", lk.avatar_dev, "up")]
        for step in steps:
            r = ip(*step)
            assert r.returncode == 0, f"ip {' '.join(step)}: {r.stderr}"
        yield lk
    finally:
        for ns in created:               # deleting a namespace deletes its veth end, and with it the peer
            ip("netns", "del", ns)


class Proc:
    """One process inside a namespace, its output collected by a thread."""

    def __init__(self, name: str, ns: str, argv: list, env: dict):
        self.name = name
        self.popen = spawn(["ip", "netns", "exec", ns, *argv], env=env, cwd=REPO, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.popen.pid        # `ip netns exec` and the venv's re-exec keep the pid: the node's own
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.popen.stdout), daemon=True)
        self._reader.start()

    def rss_mb(self) -> float:
        with open(f"/proc/{self.pid}/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return kb / 1024.0

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGINT)

    def reap(self) -> None:
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        self._reader.join(timeout=5)

    def tail(self, n: int = 3000) -> str:
        return f"--- {self.name} ---\n" + "".join(self.lines)[-n:]


def images(observer: Proc) -> list[tuple[int, int]]:
    """[(receipt time ns, header stamp ns)] of every image the kiosk's display has received so far."""
    return [(int(a), int(b)) for a, b in (ln.split()[1:3] for ln in list(observer.lines) if ln.startswith("IMG "))]


def test_graph_over_a_veth_link_recovers_from_a_5_s_cut(link, tmp_path):
    from rsatalker_ros.cli.bringup import process_commands
    from rsatalker_ros.ros import graph
    specs = graph.describe(participants=["alice"], source="wav", loop=True, with_conversation=True,
                           processes="per_participant",    # one process per machine: kiosk, avatar server
                           # one fixed level of detail: no buffers come and go as the deadline controller adapts
                           overrides={"renderer": {"width": 64, "height": 64, "backend": "cpu", "level": "6k",
                                                   "render_scales": [1.0]},
                                      "motion": {"marker_rate_hz": 0.0}, "conversation": {"vad_backend": "energy"}})
    params = tmp_path / "graph_params.yaml"
    params.write_text(yaml.safe_dump(graph.params_file_dict(specs), sort_keys=False))
    profile = tmp_path / "fastdds_udp_only.xml"
    profile.write_text(UDP_ONLY_PROFILE)
    env = child_env(ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET", FASTDDS_DEFAULT_PROFILES_FILE=str(profile))
    env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
    env.pop("ROS_STATIC_PEERS", None)
    where = {"avatar_alice": link.avatar, "audio": link.kiosk}     # motion + renderer, audio_capture + conversation
    cmds = dict(process_commands(specs, str(params)))
    assert set(cmds) == set(where)
    procs = {}
    try:
        for name in ("avatar_alice", "audio"):                                   # the audio source last
            procs[name] = Proc(name, where[name], cmds[name], env)
        observer = Proc("observer", link.kiosk, [sys.executable, os.path.join(REPO, "test", "support",
                                                                             "image_observer.py"), "alice"], env)
        nodes = dict(procs)
        procs["observer"] = observer

        def wait_for(cond, what: str):
            end = time.monotonic() + HANG_S
            while not cond():
                dead = [p.name for p in procs.values() if p.popen.poll() is not None]
                assert not dead and time.monotonic() < end, \
                    f"{what}: {'died: ' + str(dead) if dead else 'hang'}\n" + "\n".join(p.tail() for p in procs.values())
                time.sleep(0.05)

        wait_for(lambda: len(images(observer)) >= 25, "images across the link")
        wait_for(lambda: len(images(observer)) >= 50, "images before the cut")    # warmed up: RSS from here on
        rss_before = {n: p.rss_mb() for n, p in nodes.items()}
        cut_ns = time.time_ns()
        link.set(up=False)
        time.sleep(CUT_S)                          # the outage itself
        link.set(up=True)
        restored_ns = time.time_ns()
        # recovered: an image made from audio captured after the link came back has reached the kiosk
        wait_for(lambda: any(stamp >= restored_ns for _, stamp in images(observer)), "images after the cut")
        first = min(recv for recv, stamp in images(observer) if stamp >= restored_ns)
        wait_for(lambda: sum(stamp >= restored_ns for _, stamp in images(observer)) >= 25, "images flowing again")
        rss_after = {n: p.rss_mb() for n, p in nodes.items()}
        got = images(observer)
        # audio captured while the link was down never reaches the motion node, so no image may carry such a stamp
        # (judged by stamp, not by receipt: a starved observer may read an image that came before the cut late)
        during = [stamp for _, stamp in got if cut_ns + 500_000_000 <= stamp <= restored_ns - 500_000_000]
        recovery_s = (first - restored_ns) / 1e9
        print(f"\nrecovery after a {CUT_S:g} s cut: first new image {recovery_s:.2f} s after the link came back; "
              f"{len(got)} images in all; RSS before -> after [MB]: "
              + ", ".join(f"{n} {rss_before[n]:.0f} -> {rss_after[n]:.0f}" for n in nodes))
        assert not during, f"{len(during)} images were made from audio captured while the link was down: the data " \
                           "bypasses the veth link"
        assert all(p.popen.poll() is None for p in nodes.values())          # no node died ...
        for n, p in nodes.items():                                          # ... or was replaced: same processes
            with open(f"/proc/{p.pid}/cmdline") as f:
                assert " ".join(cmds[n][1:]) in f.read().replace("\0", " "), n
        grown = {n: round(rss_after[n] - rss_before[n], 1) for n in nodes
                 if rss_after[n] - rss_before[n] > RSS_TOLERANCE_MB}
        assert not grown, f"RSS grew by more than {RSS_TOLERANCE_MB} MB over the cut: {grown}"
    finally:
        for p in procs.values():
            p.stop()
        for p in procs.values():
            p.reap()
    out = "\n".join(p.tail(100_000) for p in procs.values())
    assert "Traceback" not in out, out[-6000:]
