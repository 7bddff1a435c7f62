"""Helpers every rsatalker_ros node shares: described parameters, rate-limited rejection logs, diagnostics,
the relationship parameters, and ``run`` (one node or several in one process, like a component container)."""

from __future__ import annotations

import gc
import sys
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult

from rsatalker_ros.social.relation import Relation


def declare(node, name: str, default, description: str, read_only: bool = False, dynamic: bool = False):
    """Declare a parameter with a description (units included) and return its value."""
    node.declare_parameter(name, default, ParameterDescriptor(description=description, read_only=read_only,
                                                              dynamic_typing=dynamic))
    return node.get_parameter(name).value


class RejectLog:
    """Counts rejected inputs and logs each kind of error (what + the start of its message) at most once per
    ``period_s``, so a flood of bad messages cannot flood the log."""

    def __init__(self, node, period_s: float = 1.0):
        self.node, self.period_s = node, period_s
        self.counts: dict[str, int] = {}
        self._last: dict[str, float] = {}

    def __call__(self, what: str, err: Exception | str) -> None:
        key = f"{what}: {str(err)[:28]}"
        self.counts[what] = self.counts.get(what, 0) + 1
        now = time.monotonic()
        if now - self._last.get(key, -1e9) >= self.period_s:
            self._last[key] = now
            self.node.get_logger().error(f"rejected {what}: {err} (the node keeps running; "
                                         f"{self.counts[what]} rejected so far)")

    @property
    def total(self) -> int:
        return sum(self.counts.values())


RELATION_PARAMS = ("relation_kinship", "relation_hierarchy", "relation_senior", "relation_label")


def declare_relation(node, kinship: str = "non_blood", hierarchy: str = "equal", senior: str = "",
                     label: str = "") -> Relation:
    """The relationship parameters shared by the conversation and motion nodes -> Relation (ValueError if bad)."""
    k = declare(node, "relation_kinship", kinship, "relationship kinship: 'blood' (parent-child, siblings, ...) "
                "or 'non_blood' (friends, colleagues, strangers, ...)")
    h = declare(node, "relation_hierarchy", hierarchy, "relationship hierarchy: 'equal' or 'unequal'")
    s = declare(node, "relation_senior", senior, "participant id holding the senior role when hierarchy is "
                "'unequal'; '' when 'equal'")
    lab = declare(node, "relation_label", label, "free-text label for humans and logs, e.g. 'mother-daughter'")
    return Relation.parse(k, h, s, lab)


def relation_from_params(node, params, participants) -> tuple[Relation | None, str]:
    """The relationship after a parameter change (``params``: the changed rclpy Parameters).

    Returns (relation, "") when the relation_* parameters now describe a valid relationship, (None, "") when no
    relationship parameter changed, and (None, why) when the values are valid words but not yet consistent (e.g.
    hierarchy 'unequal' set before relation_senior: `ros2 param set` changes one parameter at a time); the
    caller keeps the previous relationship then. Raises ValueError for an unknown kinship / hierarchy word or a
    senior who is not one of ``participants`` (the change is refused)."""
    changed = {p.name: p.value for p in params if p.name in RELATION_PARAMS}
    if not changed:
        return None, ""
    cur = {n: changed.get(n, node.get_parameter(n).value) for n in RELATION_PARAMS}
    k, h, senior, label = (cur[n] for n in RELATION_PARAMS)
    probe = Relation.parse(k, h, "x" if str(h).strip().lower() == "unequal" else "", label)  # words only
    del probe
    if senior and senior not in participants:
        raise ValueError(f"relation_senior {senior!r} is not one of the participants {list(participants)}")
    try:
        return Relation.parse(k, h, senior, label), ""
    except ValueError as err:
        return None, str(err)


def reject_parameters(node, reason: str) -> SetParametersResult:
    node.get_logger().error(f"parameter change rejected: {reason}")
    return SetParametersResult(successful=False, reason=reason)


def diagnostic_status(name: str, hardware_id: str, values: dict, level=DiagnosticStatus.OK,
                      message: str = "ok") -> DiagnosticStatus:
    """level: DiagnosticStatus.OK / WARN / ERROR (bytes constants)."""
    st = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id)
    st.values = [KeyValue(key=k, value=f"{v:.3f}" if isinstance(v, float) else str(v)) for k, v in values.items()]
    return st


def make_diagnostics_publisher(node):
    return node.create_publisher(DiagnosticArray, "/diagnostics", 10)


def publish_diagnostics(node, pub, statuses) -> None:
    arr = DiagnosticArray()
    arr.header.stamp = node.get_clock().now().to_msg()
    arr.status = list(statuses)
    pub.publish(arr)


def make_executor(n_nodes: int, multithreaded: bool):
    """MultiThreadedExecutor for several nodes in one process (a component container), else single-threaded.
    (rclpy.experimental.EventsExecutor delivered nothing to these nodes with the Kilted wheels: not used.)"""
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    if multithreaded:
        return MultiThreadedExecutor(num_threads=max(2, 2 * n_nodes))
    return SingleThreadedExecutor()


def run(node_classes, args=None, multithreaded: bool | None = None) -> int:
    """Run nodes until Ctrl-C / SIGTERM: one node per process (ros2 run style), or several in one process on a
    MultiThreadedExecutor (a component container; saves one Python interpreter + torch import per node).
    Lifecycle nodes are configured and activated when their ``autostart`` parameter is true.
    Returns the exit code: 1 when a node failed to start (its error is logged)."""
    rclpy.init(args=args)
    nodes = []
    code = 0
    try:
        for cls in node_classes:
            nodes.append(cls())
        for n in nodes:
            if hasattr(n, "autostart") and not n.autostart():
                code = 1
        if code == 0:
            # everything built so far (torch, models, avatars: millions of objects) lives as long as the process:
            # move it out of the garbage collector's sight, so that a full collection does not stall the stream
            # for 100+ ms every few seconds
            gc.collect()
            gc.freeze()
            multi = len(nodes) > 1 if multithreaded is None else multithreaded
            ex = make_executor(len(nodes), multi)
            for n in nodes:
                ex.add_node(n)
            try:
                ex.spin()
            finally:
                ex.shutdown()
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    except ValueError as err:       # a bad parameter at construction: say what and stop
        print(f"[ERROR] {err}", file=sys.stderr, flush=True)
        code = 1
    finally:
        for n in nodes:
            if hasattr(n, "shutdown"):
                n.shutdown()
            n.destroy_node()
        rclpy.try_shutdown()
    return code
