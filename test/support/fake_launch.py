"""Just enough of `launch` / `launch_ros` to evaluate this package's launch files where ROS 2's launch is not
installed: the classes record their arguments, OpaqueFunctions run against a context of launch-argument values."""

import importlib.util
import sys
import types


class LaunchDescription:
    def __init__(self, entities):
        self.entities = list(entities)


class DeclareLaunchArgument:
    def __init__(self, name, default_value="", description=""):
        self.name, self.default_value, self.description = name, default_value, description


class OpaqueFunction:
    def __init__(self, function):
        self.function = function


class LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context[self.name]


class Node:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.on_exit = None          # the on_exit of an OnProcessExit registered for this node (RegisterEventHandler)


class OnProcessExit:
    def __init__(self, target_action, on_exit, handle_once=False):
        self.target_action, self.on_exit, self.handle_once = target_action, on_exit, handle_once


class RegisterEventHandler:
    def __init__(self, event_handler):
        self.event_handler = event_handler
        event_handler.target_action.on_exit = event_handler.on_exit


class TimerAction:
    def __init__(self, period, actions):
        self.period, self.actions = period, actions


class LogInfo:
    def __init__(self, msg):
        self.msg = msg


def install() -> dict:
    """Put the fake modules into sys.modules (returns what was there before, for restore())."""
    saved = {k: sys.modules.get(k) for k in ("launch", "launch.actions", "launch.event_handlers",
                                             "launch.substitutions", "launch_ros", "launch_ros.actions")}
    launch = types.ModuleType("launch")
    launch.LaunchDescription = LaunchDescription
    actions = types.ModuleType("launch.actions")
    actions.DeclareLaunchArgument, actions.OpaqueFunction = DeclareLaunchArgument, OpaqueFunction
    actions.RegisterEventHandler, actions.TimerAction, actions.LogInfo = RegisterEventHandler, TimerAction, LogInfo
    handlers = types.ModuleType("launch.event_handlers")
    handlers.OnProcessExit = OnProcessExit
    subs = types.ModuleType("launch.substitutions")
    subs.LaunchConfiguration = LaunchConfiguration
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")
    ros_actions.Node = Node
    sys.modules.update({"launch": launch, "launch.actions": actions, "launch.event_handlers": handlers,
                        "launch.substitutions": subs, "launch_ros": launch_ros, "launch_ros.actions": ros_actions})
    return saved


def restore(saved: dict) -> None:
    for k, v in saved.items():
        if v is None:
            sys.modules.pop(k, None)
        else:
            sys.modules[k] = v


def evaluate(path: str, **arguments) -> list[Node]:
    """Load a launch file with the fake modules, apply launch arguments over their defaults, return every launch_ros
    Node it creates (``.kwargs``; ``.on_exit``: the OnProcessExit callback registered for it, or None). Keep the
    modules installed (``install`` / ``restore``) while calling an ``on_exit``: it creates launch actions."""
    saved = install()
    try:
        spec = importlib.util.spec_from_file_location("launch_under_test", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        desc = mod.generate_launch_description()
        context = {e.name: e.default_value for e in desc.entities if isinstance(e, DeclareLaunchArgument)}
        unknown = set(arguments) - set(context)
        if unknown:
            raise KeyError(f"launch file {path} declares no argument(s) {sorted(unknown)}")
        context.update(arguments)
        nodes = []
        for e in desc.entities:
            if isinstance(e, OpaqueFunction):
                nodes += [n for n in e.function(context) if isinstance(n, Node)]
            elif isinstance(e, Node):
                nodes.append(e)
        return nodes
    finally:
        restore(saved)
