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


def install() -> dict:
    """Put the fake modules into sys.modules (returns what was there before, for restore())."""
    saved = {k: sys.modules.get(k) for k in ("launch", "launch.actions", "launch.substitutions", "launch_ros",
                                             "launch_ros.actions")}
    launch = types.ModuleType("launch")
    launch.LaunchDescription = LaunchDescription
    actions = types.ModuleType("launch.actions")
    actions.DeclareLaunchArgument, actions.OpaqueFunction = DeclareLaunchArgument, OpaqueFunction
    subs = types.ModuleType("launch.substitutions")
    subs.LaunchConfiguration = LaunchConfiguration
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")
    ros_actions.Node = Node
    sys.modules.update({"launch": launch, "launch.actions": actions, "launch.substitutions": subs,
                        "launch_ros": launch_ros, "launch_ros.actions": ros_actions})
    return saved


def restore(saved: dict) -> None:
    for k, v in saved.items():
        if v is None:
            sys.modules.pop(k, None)
        else:
            sys.modules[k] = v


def evaluate(path: str, **arguments) -> list[dict]:
    """Load a launch file with the fake modules, apply launch arguments over their defaults, return the kwargs of
    every launch_ros Node it creates."""
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
                nodes += [n.kwargs for n in e.function(context)]
            elif isinstance(e, Node):
                nodes.append(e.kwargs)
        return nodes
    finally:
        restore(saved)
