"""In-process ROS test harness: the node under test and a tester node on one executor, /rosout captured."""

import time

import numpy as np


class Harness:
    def __init__(self, *nodes):
        import rclpy
        from rcl_interfaces.msg import Log
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        self.rclpy = rclpy
        self.tester = rclpy.create_node("tester")
        self.logs = []
        self.tester.create_subscription(Log, "/rosout", self.logs.append,
                                        QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        self.ex = SingleThreadedExecutor()
        self.nodes = list(nodes)
        for n in [self.tester] + self.nodes:
            self.ex.add_node(n)
        self._pubs = {}

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.01)

    def spin_until(self, cond, timeout: float = 20.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return True
            self.ex.spin_once(timeout_sec=0.01)
        return cond()

    def collect(self, msg_type, topic, qos):
        out = []
        self.tester.create_subscription(msg_type, topic, out.append, qos)
        return out

    def publisher(self, msg_type, topic, qos):
        key = (msg_type, topic)
        if key not in self._pubs:
            self._pubs[key] = self.tester.create_publisher(msg_type, topic, qos)
        return self._pubs[key]

    def errors(self, node_name: str | None = None) -> list[str]:
        return [m.msg for m in self.logs if m.level >= 40 and (node_name is None or m.name == node_name)]

    def publish_audio(self, pid: str, samples: np.ndarray, t0_ns: int, chunk: int = 320, spin_s: float = 0.0,
                      realtime: float = 0.0) -> int:
        """Publish samples as AudioFrames stamped from t0_ns; returns the stamp after the last sample.
        realtime > 0 paces the chunks at that fraction of real time (1.0 = real time)."""
        from rsatalker_ros.motion.layout import AUDIO_RATE
        from rsatalker_ros.msg import AudioFrame
        from rsatalker_ros.ros import qos
        from rsatalker_ros.ros.convert import audio_to_msg
        pub = self.publisher(AudioFrame, f"/rsatalker/{pid}/audio", qos.AUDIO)
        for i in range(0, len(samples), chunk):
            x = samples[i:i + chunk]
            pub.publish(audio_to_msg(x, AUDIO_RATE, pid, t0_ns + int(i * 1e9 / AUDIO_RATE)))
            if realtime:
                self.spin(len(x) / AUDIO_RATE / realtime)
            elif spin_s:
                self.spin(spin_s)
        return t0_ns + int(len(samples) * 1e9 / AUDIO_RATE)

    def close(self) -> None:
        for n in self.nodes:
            if hasattr(n, "shutdown"):
                n.shutdown()
        self.ex.shutdown()
        for n in self.nodes + [self.tester]:
            n.destroy_node()


def demo_audio(seconds: float | None = None):
    """The bundled two-speaker demo conversation: (speaker_a [n], speaker_b [n]) float32 16 kHz, and its turns."""
    import json
    from pathlib import Path

    from rsatalker_ros.audio.wav_io import read_wav
    d = Path(__file__).resolve().parents[2] / "rsatalker_ros" / "assets" / "demo"
    meta = json.loads((d / "conversation.json").read_text())
    a, _ = read_wav(str(d / meta["files"]["A"]))
    b, _ = read_wav(str(d / meta["files"]["B"]))
    n = a.shape[0] if seconds is None else int(seconds * 16000)
    return a[:n, 0], b[:n, 0], meta["turns"]
