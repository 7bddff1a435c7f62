"""The lifecycle adapter around a small stage, in-process: descriptors generated from the config dataclass, bad
values refused with a reason, runtime changes that act, entities only while active, one /diagnostics publisher for
the node's life, and diagnostics that go WARN when the stage misses its rate or inputs are rejected."""

from dataclasses import dataclass

import pytest

from rsatalker_ros.stages.params import param
from support.ros_harness import Harness

pytestmark = pytest.mark.ros


@dataclass(frozen=True)
class TickConfig:
    topic: str = param("/adapter_test/ticks", "where ticks go")
    rate_hz: float = param(50.0, "tick rate", units="Hz", low=1.0, high=200.0)
    text: str = param("a", "what each tick says", runtime=True)
    target_hz: float = param(50.0, "expected tick rate for diagnostics", units="Hz", low=0.0, high=1000.0,
                             runtime=True)
    repeat: int = param(1, "copies of text per tick", low=1, high=10, runtime=True)


def tick_node_class():
    from std_msgs.msg import String

    from rsatalker_ros.ros import qos
    from rsatalker_ros.ros.lifecycle_adapter import StageNode
    from rsatalker_ros.stages.health import RateCheck, Status

    class TickNode(StageNode):
        config_class = TickConfig

        def make_stage(self, cfg):
            self.configured = getattr(self, "configured", 0) + 1
            return object()

        def open(self):
            self.pub = self.publisher(String, self.config.topic, qos.STATE)
            self.rate = RateCheck("ticks_per_s", self.config.target_hz)
            self.timer(1.0 / self.config.rate_hz, self._tick)
            self.subscription(String, "/adapter_test/input", self._on_input, qos.STATE)

        def _tick(self):
            self.pub.publish(String(data=self.config.text * self.config.repeat))
            self.rate.tick()

        def _on_input(self, msg):
            if not msg.data.isdigit():
                self.reject("input", f"{msg.data!r} is not a number")

        def reconfigure(self, cfg, changed):
            if "target_hz" in changed:
                self.rate.target_hz = cfg.target_hz

        def status(self):
            st = Status("")
            self.rate.check(st)
            return [st]

    return TickNode


@pytest.fixture(scope="module")
def ros():
    import rclpy
    rclpy.init()
    yield
    rclpy.try_shutdown()


def publishers_of(h, node, topic):
    return [n for n in h.tester.get_publishers_info_by_topic(topic) if n.node_name == node.get_name()]


def test_descriptors_and_parameter_changes(ros):
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    node = tick_node_class()("tick")
    try:
        d = {x.name: x for x in node.describe_parameters(["rate_hz", "text", "repeat", "autostart"])}
        assert d["rate_hz"].description == "tick rate [Hz]" and d["rate_hz"].read_only
        assert (d["rate_hz"].floating_point_range[0].from_value, d["rate_hz"].floating_point_range[0].to_value) \
            == (1.0, 200.0)
        assert d["repeat"].integer_range[0].to_value == 10 and not d["repeat"].read_only and not d["text"].read_only
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        res = node.set_parameters([Parameter("rate_hz", value=10.0)])[0]
        assert not res.successful and "read-only" in res.reason
        res = node.set_parameters([Parameter("repeat", value=50)])[0]
        assert not res.successful and "repeat" in res.reason
        assert node.set_parameters([Parameter("text", value="b"), Parameter("repeat", value=3)])[0].successful
        assert node.config.text == "b" and node.config.repeat == 3
    finally:
        node.destroy_node()


def test_entities_live_while_active_and_one_diagnostics_publisher_for_life(ros):
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.parameter import Parameter
    from std_msgs.msg import String

    from rsatalker_ros.ros import qos
    node = tick_node_class()("tick_life", parameter_overrides=[Parameter("diagnostics_period_s", value=0.2)])
    h = Harness(node)
    try:
        ticks = h.collect(String, "/adapter_test/ticks", qos.STATE)
        diags = h.collect(DiagnosticArray, "/diagnostics", 50)
        assert h.spin_until(lambda: any(s.message == "unconfigured" for a in diags for s in a.status), 10)
        for _ in range(2):                                  # configure/activate, then deactivate/cleanup, twice
            node.trigger_configure()
            node.trigger_activate()
            assert len(publishers_of(h, node, "/adapter_test/ticks")) == 1
            assert h.spin_until(lambda: len(ticks) > 5, 10)
            node.set_parameters([Parameter("text", value="z")])
            assert h.spin_until(lambda: ticks[-1].data == "z", 5)          # a runtime change acts at once
            node.trigger_deactivate()
            assert publishers_of(h, node, "/adapter_test/ticks") == []
            n = len(ticks)
            h.spin(0.2)
            assert len(ticks) == n                                          # the timer went with it
            node.trigger_cleanup()
            assert node.config is None
            assert len(publishers_of(h, node, "/diagnostics")) == 1
        assert node.configured == 2
    finally:
        h.close()


def test_diagnostics_warn_on_missed_rate_and_rejected_input(ros):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from rclpy.parameter import Parameter
    from std_msgs.msg import String

    from rsatalker_ros.ros import qos
    node = tick_node_class()("tick_diag", parameter_overrides=[Parameter("diagnostics_period_s", value=0.25),
                                                                Parameter("rate_hz", value=20.0),
                                                                Parameter("target_hz", value=5.0)])
    h = Harness(node)
    try:
        diags = h.collect(DiagnosticArray, "/diagnostics", 50)
        assert node.autostart()
        mine = lambda: [s for a in diags for s in a.status if s.name == "tick_diag"]  # noqa: E731
        assert h.spin_until(lambda: len(mine()) > 3 and mine()[-1].level == DiagnosticStatus.OK, 10), \
            [(s.level, s.message) for s in mine()]
        node.set_parameters([Parameter("target_hz", value=500.0)])             # now it misses its target
        assert h.spin_until(lambda: mine()[-1].level != DiagnosticStatus.OK, 10)
        assert "ticks_per_s" in mine()[-1].message
        node.set_parameters([Parameter("target_hz", value=5.0)])    # well below 20 Hz: OK even on a busy machine
        assert h.spin_until(lambda: mine()[-1].level == DiagnosticStatus.OK, 10)
        pub = h.publisher(String, "/adapter_test/input", qos.STATE)      # (re-sent until discovery has matched)
        assert h.spin_until(lambda: (pub.publish(String(data="x1")), h.spin(0.1))[1] is None
                            and node.reject.counts.get("input"), 10)
        assert h.spin_until(lambda: mine()[-1].level == DiagnosticStatus.WARN and " input" in mine()[-1].message, 10)
        values = {kv.key: kv.value for kv in mine()[-1].values}
        assert int(values["rejected: input"]) >= 1
        assert any("'x1' is not a number" in e for e in h.errors("tick_diag"))
    finally:
        h.close()
