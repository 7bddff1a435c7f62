"""foxglove_bridge: the graph live in Foxglove (images raw and compressed, camera info, the mesh marker, the
conversation state, diagnostics and every other topic of the graph) over a ``foxglove-sdk`` WebSocket server.

    python -m rsatalker_ros.nodes.foxglove_bridge --ros-args -p port:=8765
    # Foxglove: Open connection -> Foxglove WebSocket -> ws://127.0.0.1:8765

Each topic becomes a channel with its ros2msg schema (rosbag2's message definition text) and CDR messages, passed
through byte for byte. A topic is taken from ROS only while a client subscribes to it. Bound to ``host``
(loopback by default): set 0.0.0.0 to reach it from another machine.
"""

from __future__ import annotations

from rsatalker_ros.bag.msgdef import message_definition
from rsatalker_ros.bag.select import graph_topics
from rsatalker_ros.display.foxglove_stage import NODE_NAME, FoxgloveBridge, FoxgloveConfig
from rsatalker_ros.nodes.raw_topics import discover, message_class, subscription_qos
from rsatalker_ros.ros.lifecycle_adapter import StageNode
from rsatalker_ros.ros.spin import run
from rsatalker_ros.stages.health import Status


class FoxgloveBridgeNode(StageNode):
    config_class = FoxgloveConfig
    hardware_id = "foxglove"
    # its raw subscriptions take (data, MessageInfo), which rclpy 9.1.2's EventsExecutor passes as one tuple:
    # ros.spin gives this node rclpy's SingleThreadedExecutor
    EVENTS_EXECUTOR_OK = False

    def __init__(self, name: str = NODE_NAME, **kwargs):
        super().__init__(name, **kwargs)
        self._subs: dict = {}
        self._types: dict[str, str] = {}
        self._publishers: dict[str, list] = {}
        self._refused: dict[str, str] = {}

    def make_stage(self, cfg: FoxgloveConfig) -> FoxgloveBridge:
        self.include = [t for t in cfg.topics if t] or graph_topics(list(cfg.participants))
        self.exclude = [t for t in cfg.exclude if t]
        return FoxgloveBridge(cfg)

    def open(self) -> None:
        self.stage.start()
        self.get_logger().info(f"Foxglove WebSocket server on ws://{self.config.host}:{self.stage.port} "
                               f"(subprotocol foxglove.sdk.v1)")
        self._update()
        self.timer(self.config.discovery_period_s, self._update)

    def close(self) -> None:
        for sub in self._subs.values():
            self.destroy_subscription(sub)
        self._subs.clear()
        if self.stage is not None:
            self.stage.stop()
        self._types.clear()

    def _update(self) -> None:
        for topic, type_name, pubs in discover(self, self.include, self.exclude, set(self._types) | set(self._refused)):
            try:
                message_class(type_name)
                self.stage.add_topic(topic, type_name, message_definition(type_name))
            except (ValueError, FileNotFoundError) as err:
                self._refused[topic] = str(err)
                self.reject("topic", f"{topic}: {err}")
                continue
            self._types[topic], self._publishers[topic] = type_name, pubs
        wanted = self.stage.wanted()
        for topic in wanted - set(self._subs):
            self._subs[topic] = self.create_subscription(
                message_class(self._types[topic]), topic,
                lambda data, info, t=topic: self.stage.log(t, data, info["received_timestamp"]),
                subscription_qos(self.get_publishers_info_by_topic(topic) or self._publishers[topic], 10), raw=True)
        for topic in set(self._subs) - wanted:
            self.destroy_subscription(self._subs.pop(topic))

    def status(self) -> list[Status]:
        return [Status("", values={"port": self.stage.port, "channels": len(self.stage.channels),
                                   "subscribed_topics": len(self._subs), "messages_forwarded": self.stage.logged,
                                   "refused_topics": len(self._refused)})]


def main(args=None):
    raise SystemExit(run([FoxgloveBridgeNode], args))


if __name__ == "__main__":
    main()
