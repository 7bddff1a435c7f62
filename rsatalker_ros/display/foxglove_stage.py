"""The Foxglove bridge without rclpy: a ``foxglove-sdk`` WebSocket server (subprotocol ``foxglove.sdk.v1``) with
one channel per ROS topic, each carrying the topic's CDR bytes under its ros2msg schema (the message definition
as rosbag2 writes it), so the Foxglove app decodes images, camera info, markers, diagnostics and the package's own
messages itself. Clients subscribe per channel; ``wanted()`` says which topics to take from ROS.

    bridge = FoxgloveBridge(FoxgloveConfig(port=8765)); bridge.start()
    bridge.add_topic("/rsatalker/alice/image_raw", "sensor_msgs/msg/Image", definition)
    if "/rsatalker/alice/image_raw" in bridge.wanted(): bridge.log("/rsatalker/alice/image_raw", cdr, t_ns)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from rsatalker_ros.stages.params import param


#: header of config/foxglove_bridge.yaml (config_yaml(NODE_NAME, FoxgloveConfig, CONFIG_HEADER); a test checks it)
NODE_NAME = "foxglove_bridge"
CONFIG_HEADER = """\
foxglove_bridge: the graph live in Foxglove (rsatalker_ros/nodes/foxglove_bridge.py).
    python -m rsatalker_ros.nodes.foxglove_bridge --ros-args --params-file config/foxglove_bridge.yaml"""


@dataclass(frozen=True)
class FoxgloveConfig:
    host: str = param("127.0.0.1", "address the WebSocket server binds (loopback: this machine only; 0.0.0.0: "
                      "every network interface)")
    port: int = param(8765, "WebSocket port (Foxglove: Open connection -> Foxglove WebSocket -> "
                      "ws://host:port)", low=0, high=65535)
    participants: tuple = param(("alice", "bob"), "participant ids whose topics are bridged (with 'topics' empty)")
    topics: tuple = param(("",), "topic names or shell patterns to bridge; [''] = every topic of the graph")
    exclude: tuple = param(("",), "topic patterns never bridged; [''] = none")
    discovery_period_s: float = param(0.5, "how often new topics and client subscriptions are checked",
                                      units="s", low=0.05, high=10.0)


class FoxgloveBridge:
    def __init__(self, config: FoxgloveConfig):
        import foxglove
        self.config = config
        self._fg = foxglove
        self.context = foxglove.Context()
        self.channels: dict[str, object] = {}
        self._subscribers: dict[str, int] = {}      # topic -> subscribed clients
        self._lock = threading.Lock()
        self.server = None
        self.logged = 0

    # foxglove.websocket.ServerListener (called from the server's thread)
    def on_subscribe(self, client, channel) -> None:
        with self._lock:
            self._subscribers[channel.topic] = self._subscribers.get(channel.topic, 0) + 1

    def on_unsubscribe(self, client, channel) -> None:
        with self._lock:
            n = self._subscribers.get(channel.topic, 0) - 1
            if n > 0:
                self._subscribers[channel.topic] = n
            else:
                self._subscribers.pop(channel.topic, None)

    def start(self) -> None:
        try:
            self.server = self._fg.start_server(name="rsatalker_ros", host=self.config.host, port=self.config.port,
                                                server_listener=self, context=self.context)
        except Exception as err:  # noqa: BLE001 - the SDK raises its own error types; say where it failed
            raise OSError(f"cannot start the Foxglove server on {self.config.host}:{self.config.port}: {err}") \
                from err

    @property
    def port(self) -> int:
        return self.server.port if self.server is not None else 0

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        for ch in self.channels.values():
            ch.close()
        self.channels.clear()

    def add_topic(self, topic: str, type_name: str, definition: str) -> None:
        if topic in self.channels:
            return
        schema = self._fg.Schema(name=type_name, encoding="ros2msg", data=definition.encode())
        self.channels[topic] = self._fg.Channel(topic, schema=schema, message_encoding="cdr", context=self.context)

    def wanted(self) -> set[str]:
        with self._lock:
            return {t for t in self._subscribers if t in self.channels}

    def log(self, topic: str, data: bytes, log_time_ns: int) -> None:
        ch = self.channels.get(topic)
        if ch is not None:
            ch.log(bytes(data), log_time=int(log_time_ns))
            self.logged += 1
