"""GraphProbe: a node that watches the graph's output topics and measures what a display would see.

Per topic: message count, rate over the receive window, and for stamped topics the latency from the header stamp
(the audio clock: capture time of the audio the frame shows) to reception. Optionally keeps every image (demo
recording) or the last ones (tests). Used by the demo, the graph benchmark and the integration tests.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image

from rsatalker_ros.msg import ConversationState, FaceMesh, FaceTopology, SocialMotion
from rsatalker_ros.ros import qos, topics
from rsatalker_ros.ros.convert import image_from_msg, stamp_to_ns


@dataclass
class TopicLog:
    recv_ns: list = field(default_factory=list)
    stamp_ns: list = field(default_factory=list)
    last: object = None
    messages: list = field(default_factory=list)   # every message, when the probe keeps them

    def rate_hz(self, skip_s: float = 0.0) -> float:
        t = np.asarray(self.recv_ns, np.int64)
        if skip_s and t.size:
            t = t[t >= t[0] + skip_s * 1e9]
        return float((t.size - 1) / ((t[-1] - t[0]) / 1e9)) if t.size > 2 and t[-1] > t[0] else 0.0

    def latency_ms(self, skip_s: float = 0.0) -> np.ndarray:
        r, s = np.asarray(self.recv_ns, np.int64), np.asarray(self.stamp_ns, np.int64)
        if skip_s and r.size:
            keep = r >= r[0] + skip_s * 1e9
            r, s = r[keep], s[keep]
        return (r - s) / 1e6


class GraphProbe(Node):
    def __init__(self, participants, keep_images: bool = False, name: str = "rsatalker_probe",
                 extra: tuple = ("motion", "mesh", "conversation"), keep_messages: bool = True):
        super().__init__(name)
        self.keep_messages = keep_messages
        self.participants = list(participants)
        self.keep_images = keep_images
        self.images: dict[str, list] = {p: [] for p in self.participants}   # (stamp_ns, rgb uint8) when kept
        self.logs: dict[str, TopicLog] = {}
        self.lock = threading.Lock()
        self.topologies: dict[str, FaceTopology] = {}     # latched: a motion node is up once its topology is here
        self.diagnostics_from: set[str] = set()           # nodes whose /diagnostics arrived (they are up)
        self.diagnostics: dict[str, list[dict]] = {}      # node name -> every report's key/values
        from diagnostic_msgs.msg import DiagnosticArray
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        for p in self.participants:
            self.create_subscription(FaceTopology, topics.participant(p, "mesh_topology"),
                                     lambda m, p=p: self.topologies.__setitem__(p, m), qos.LATCHED)
            self._watch(Image, topics.participant(p, "image_raw"), qos.RECORD, p)
            if "motion" in extra:
                self._watch(SocialMotion, topics.participant(p, "motion"), qos.STATE)
            if "mesh" in extra:
                self._watch(FaceMesh, topics.participant(p, "mesh"), qos.RECORD)
        if "conversation" in extra:
            self._watch(ConversationState, topics.CONVERSATION, qos.STATE)

    def _on_diagnostics(self, msg) -> None:
        for st in msg.status:
            self.diagnostics_from.add(st.name)
            self.diagnostics.setdefault(st.name, []).append({kv.key: kv.value for kv in st.values})

    def publish_latency(self, pid: str, since: int = 0) -> tuple[float, float]:
        """(p50, p95) of the renderer's audio-stamp -> publish latency over every image it reported from its
        ``since``-th diagnostics report on [ms]."""
        each = publish_latencies(self.diagnostics.get(f"renderer_{pid}", [])[since:])
        if not each.size:
            return float("nan"), float("nan")
        return float(np.percentile(each, 50)), float(np.percentile(each, 95))

    def _watch(self, msg_type, topic, profile, image_of: str | None = None):
        self.logs[topic] = TopicLog()
        self.create_subscription(msg_type, topic, lambda m: self._on(topic, m, image_of), profile)

    def _on(self, topic, msg, image_of):
        now = self.get_clock().now().nanoseconds
        log = self.logs[topic]
        with self.lock:
            log.recv_ns.append(now)
            log.stamp_ns.append(stamp_to_ns(msg.header.stamp))
            log.last = msg
            if self.keep_messages:
                log.messages.append(msg)
            if image_of is not None and self.keep_images:
                self.images[image_of].append((log.stamp_ns[-1], image_from_msg(msg)))

    def spin_for(self, seconds: float, until=None) -> bool:
        """Spin this node alone for ``seconds`` or until ``until()`` is true; returns whether it became true."""
        import rclpy
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self, timeout_sec=0.05)
            if until is not None and until():
                return True
        return False

    def messages(self, topic: str) -> list:
        with self.lock:
            return list(self.logs[topic].messages)

    def graph_ready(self) -> bool:
        """Motion nodes up (their latched topology arrived) and renderers up (warmed up, reporting)."""
        return all(p in self.topologies and f"renderer_{p}" in self.diagnostics_from for p in self.participants)

    def count(self, topic: str) -> int:
        return len(self.logs[topic].recv_ns)

    def summary(self, skip_s: float = 0.0) -> dict:
        out = {}
        with self.lock:
            for topic, log in self.logs.items():
                lat = log.latency_ms(skip_s)
                out[topic] = {"messages": len(log.recv_ns), "rate_hz": log.rate_hz(skip_s),
                              "latency_ms_p50": float(np.percentile(lat, 50)) if lat.size else float("nan"),
                              "latency_ms_p95": float(np.percentile(lat, 95)) if lat.size else float("nan")}
        return out


def publish_latencies(reports: list[dict]) -> np.ndarray:
    """Every image's audio-stamp -> publish latency [ms] from a renderer's diagnostics reports (key/value dicts)."""
    return np.array([float(v) for r in reports for v in r.get("stamp_to_publish_ms_each", "").split(",") if v])


def format_summary(summary: dict) -> str:
    lines = [f"{'topic':44s} {'msgs':>6s} {'rate Hz':>8s} {'stamp->recv p50 ms':>19s} {'p95 ms':>8s}"]
    for topic, s in summary.items():
        lines.append(f"{topic:44s} {s['messages']:6d} {s['rate_hz']:8.1f} {s['latency_ms_p50']:19.1f} "
                     f"{s['latency_ms_p95']:8.1f}")
    return "\n".join(lines)
