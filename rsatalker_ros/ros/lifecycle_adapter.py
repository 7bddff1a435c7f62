"""StageNode: a thin rclpy lifecycle node around a ROS-free stage whose config is a dataclass.

How a node is written with it (one small class per file, ``main()`` at the bottom):

    @dataclass(frozen=True)                                   # in a ROS-free module (rsatalker_ros/stages/)
    class EchoConfig:
        topic: str = param("/echo", "where to publish")
        rate_hz: float = param(10.0, "publish rate", units="Hz", low=0.1, high=100.0)
        text: str = param("hi", "what to say", runtime=True)  # may change while running; the rest are read-only

    class EchoNode(StageNode):
        config_class = EchoConfig

        def make_stage(self, cfg):           # on_configure: parameters read and checked; load models, open devices
            return EchoStage(cfg, self.reject)

        def open(self):                      # on_activate: create entities here (destroyed on deactivate/cleanup)
            self.pub = self.publisher(String, self.config.topic, qos.STATE)
            self.timer(1.0 / self.config.rate_hz, lambda: self.pub.publish(String(data=self.config.text)))
            self.rate = RateCheck("messages_per_s", self.config.rate_hz)

        def status(self):                    # each diagnostics period while active
            st = Status("")
            self.rate.check(st)              # WARN / ERROR below target
            return [st]

    def main(args=None):
        raise SystemExit(run([EchoNode], args))

What the base does:
  - declares one ROS parameter per config field with a descriptor generated from the field (description + units,
    FloatingPointRange / IntegerRange, allowed values, read_only unless the field is ``runtime``), plus
    ``autostart`` and ``diagnostics_period_s`` (stages.params.LifecycleFields);
  - on_configure reads the parameters into ``self.config`` (checked: a bad value fails the transition with the
    reason logged) and calls ``make_stage``; on_activate calls ``open``; on_deactivate calls ``close`` and then
    destroys every entity made with ``publisher`` / ``subscription`` / ``timer``; on_cleanup / on_shutdown also
    drop the stage (``release``);
  - runtime parameter changes: checked against the field (range, type, choices) and the dataclass's
    ``__post_init__``, then handed to ``reconfigure(cfg, changed)`` while configured (raise ValueError to refuse:
    the change is rejected with that reason); ``self.config`` is replaced, never mutated;
  - one /diagnostics publisher for the node's whole life (diagnostic_updater style, every
    ``diagnostics_period_s``): the lifecycle state while not active, else ``status()``; input rejections
    (``self.reject(cause, err)``, or ``self.refuse(what, rejection)`` for an input_limits check, counted by cause)
    are added to the first status and make it WARN; the same timer hands the C heap's free pages back to the
    OS every 10 s (rsatalker_ros.ros.heap: without it a motion node's resident size crept up by ~1 MB/min).
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

from rsatalker_ros.ros.heap import HeapTrimmer
from rsatalker_ros.stages import health, params
from rsatalker_ros.stages.health import Rejections, Status

_INT_MIN, _INT_MAX = -(2 ** 63), 2 ** 63 - 1


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc; None elsewhere), or since a warm spare became this node
    (rsatalker_ros.ros.warm_spare sets RSATALKER_BECAME_AT, monotonic seconds): a node's start-up time in its log."""
    became = os.environ.get("RSATALKER_BECAME_AT")
    if became:
        return time.monotonic() - float(became)
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            return float(f.read().split()[0]) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def descriptor(spec: params.ParamSpec) -> ParameterDescriptor:
    """The ROS parameter descriptor of one config field."""
    d = ParameterDescriptor(description=spec.full_description(), additional_constraints=spec.constraints(),
                            read_only=not spec.runtime)
    if isinstance(spec.default, tuple) or (spec.low is None and spec.high is None):
        return d
    if spec.kind is float:
        d.floating_point_range = [FloatingPointRange(
            from_value=float(spec.low) if spec.low is not None else -sys.float_info.max,
            to_value=float(spec.high) if spec.high is not None else sys.float_info.max, step=0.0)]
    elif spec.kind is int:
        d.integer_range = [IntegerRange(from_value=int(spec.low) if spec.low is not None else _INT_MIN,
                                        to_value=int(spec.high) if spec.high is not None else _INT_MAX, step=1)]
    return d


def diagnostic_status(node_name: str, st: Status) -> DiagnosticStatus:
    out = DiagnosticStatus(level=bytes([st.level]), name=f"{node_name}: {st.name}" if st.name else node_name,
                           message=st.message, hardware_id=st.hardware_id)
    out.values = [KeyValue(key=k, value=f"{v:.3f}" if isinstance(v, float) else str(v)) for k, v in st.values.items()]
    return out


def serialized(transition):
    """One transition at a time (services may arrive on several executor threads at once)."""
    @functools.wraps(transition)
    def run_alone(self, state):
        with self._transition_lock:
            return transition(self, state)
    return run_alone


class StageNode(LifecycleNode):
    config_class: type = None            # the stage's config dataclass (fields made with stages.params.param)
    hardware_id: str = ""

    def __init__(self, name: str, **kwargs):
        self._transition_lock = threading.RLock()
        super().__init__(name, **kwargs)
        self._specs = {s.name: s for s in params.specs(self.config_class)}
        for s in list(self._specs.values()) + params.specs(params.LifecycleFields):
            self.declare_parameter(s.name, params.as_ros_value(s.default), descriptor(s))
        self.config = None               # the config dataclass, from on_configure on
        self.stage = None
        self.active = False
        self._configure_s = None         # how long the last on_configure took (logged at the next activation)
        self.reject = Rejections(self.get_logger().error)
        self._entities: list = []
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # one publisher and timer for the node's whole life: the report says the state while not active
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._heap = HeapTrimmer()       # freed C heap back to the OS every 10 s (rsatalker_ros.ros.heap)
        self._diag_timer = self.create_timer(self.get_parameter("diagnostics_period_s").value,
                                             self._quiet_at_shutdown(self.publish_diagnostics))

    # ---- what a node defines -----------------------------------------------------------------------------------
    def make_stage(self, cfg):
        """on_configure: build the ROS-free stage from the checked config (ValueError / OSError fail the
        transition with the error logged)."""
        raise NotImplementedError

    def open(self) -> None:
        """on_activate: create publishers / subscriptions / timers with ``publisher`` / ``subscription`` /
        ``timer`` and start the stage's threads."""

    def close(self) -> None:
        """on_deactivate (and before cleanup / shutdown): stop the stage's threads; the entities go after this."""

    def release(self) -> None:
        """on_cleanup / on_shutdown: free what make_stage built."""
        self.stage = None

    def reconfigure(self, cfg, changed: set) -> None:
        """A runtime parameter changed while configured (``self.config`` still holds the old config); raise
        ValueError to refuse the change. Default: nothing beyond replacing ``self.config``."""

    def status(self) -> list[Status]:
        """Diagnostics while active: one or more statuses (the first one's name is usually '', the node's)."""
        return [Status("")]

    # ---- entities that live from activate to deactivate ----------------------------------------------------
    def publisher(self, msg_type, topic: str, qos):
        pub = self.create_publisher(msg_type, topic, qos)
        self._entities.append(pub)
        return pub

    def subscription(self, msg_type, topic: str, callback, qos, raw: bool = False):
        """raw: the callback gets the serialized message (bytes) instead of a message object."""
        sub = self.create_subscription(msg_type, topic, self._quiet_at_shutdown(callback), qos, raw=raw)
        self._entities.append(sub)
        return sub

    def refuse(self, what: str, why) -> None:
        """An input refused by an input_limits check (``why``: Rejection): counted under its cause."""
        self.reject(why.cause, f"{what}: {why.detail}")

    def timer(self, period_s: float, callback):
        t = self.create_timer(period_s, self._quiet_at_shutdown(callback))
        self._entities.append(t)
        return t

    def _quiet_at_shutdown(self, callback):
        """``callback`` that ends quietly when a signal ends the node: Ctrl-C raises KeyboardInterrupt wherever the
        callback is, and a publish after the context shut down fails ("publisher's context is invalid"); the
        EventsExecutor logs either as FATAL with a traceback. rclpy's signal handler shuts the context down, which
        ends ros.spin's loop. Errors while the context is up still propagate."""
        context = self.context

        @functools.wraps(callback)
        def call(*args):
            try:
                return callback(*args)
            except KeyboardInterrupt:
                return None
            except Exception:  # noqa: BLE001
                if context.ok():
                    raise
                return None
        return call

    def _destroy_entities(self) -> None:
        from rclpy.publisher import Publisher
        from rclpy.subscription import Subscription
        for e in reversed(self._entities):
            if isinstance(e, Publisher):
                self.destroy_publisher(e)
            elif isinstance(e, Subscription):
                self.destroy_subscription(e)
            else:
                self.destroy_timer(e)
        self._entities = []

    # ---- lifecycle ------------------------------------------------------------------------------------------
    def read_config(self):
        """The config from the current parameter values (ValueError naming a bad one)."""
        return params.build(self.config_class, {n: self.get_parameter(n).value for n in self._specs})

    @serialized
    def on_configure(self, state) -> TransitionCallbackReturn:
        try:
            cfg = self.read_config()
            t0 = time.perf_counter()
            self.stage = self.make_stage(cfg)
            self._configure_s = time.perf_counter() - t0
        except (ValueError, OSError) as err:
            self.get_logger().error(f"cannot configure: {err}")
            self.stage = None
            return TransitionCallbackReturn.FAILURE
        self.config = cfg
        return TransitionCallbackReturn.SUCCESS

    @serialized
    def on_activate(self, state) -> TransitionCallbackReturn:
        self.active = True                 # threads that open() starts may check it
        try:
            self.open()
        except (ValueError, OSError) as err:
            self.get_logger().error(f"cannot activate: {err}")
            self._deactivate()
            return TransitionCallbackReturn.FAILURE
        age = process_age_s()
        if age is not None and self._configure_s is not None:   # the first activation: start-up
            self.get_logger().info(f"start-up: active {age:.1f} s after the process started ({self._configure_s:.1f} "
                                   f"s of it on_configure: models, assets, warm-up; the rest imports and DDS)")
            self._configure_s = None
        return super().on_activate(state)

    def _deactivate(self) -> None:
        self.active = False
        self.close()
        self._destroy_entities()

    @serialized
    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self._deactivate()
        return super().on_deactivate(state)

    @serialized
    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._deactivate()
        self.release()
        self.config = None
        return TransitionCallbackReturn.SUCCESS

    @serialized
    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self.shutdown()
        return TransitionCallbackReturn.SUCCESS

    def shutdown(self) -> None:
        """Stop threads and free the stage (on_shutdown, and ``run`` before destroying the node)."""
        if self.active or self._entities:
            self._deactivate()
        if self.stage is not None:
            self.release()

    def destroy_node(self) -> None:
        super().destroy_node()
        # rclpy's LifecycleNode keeps its state machine, and with it the rcl node, alive after destroy_node: a later
        # node of the same name would then lose its /rosout logs (and leak the old one's entities)
        self._state_machine.destroy_when_not_in_use()

    def autostart(self) -> bool:
        """Configure and activate when the ``autostart`` parameter is true; False when a transition failed."""
        if not self.get_parameter("autostart").value:
            return True
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return False
        return self.trigger_activate() == TransitionCallbackReturn.SUCCESS

    # ---- parameters -----------------------------------------------------------------------------------------
    def _on_set_parameters(self, changed_params) -> SetParametersResult:
        changes = {p.name: p.value for p in changed_params if p.name in self._specs}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            if self.config is None:          # not configured: check the values; on_configure reads them
                for name, value in changes.items():
                    params.check_value(self._specs[name], value)
            else:
                cfg = params.update(self.config, changes)
                self.reconfigure(cfg, set(changes))
                self.config = cfg
        except ValueError as err:
            self.get_logger().error(f"parameter change rejected: {err}")
            return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    # ---- diagnostics ----------------------------------------------------------------------------------------
    def publish_diagnostics(self) -> None:
        if self.active:
            try:
                statuses = self.status()
            except Exception as err:  # noqa: BLE001 - a broken report is an ERROR status, not a dead node
                statuses = [Status("", health.ERROR, f"status report failed: {err}")]
        else:
            statuses = [Status("", health.OK, "configured, inactive" if self.stage is not None else "unconfigured")]
        self.reject.check(statuses[0])
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        for st in statuses:
            st.hardware_id = st.hardware_id or self.hardware_id
        arr.status = [diagnostic_status(self.get_name(), st) for st in statuses]
        self._diag_pub.publish(arr)
        self._heap.maybe_trim()
