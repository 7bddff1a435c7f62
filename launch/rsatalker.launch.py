"""Two participants talking: audio capture, conversation, and a motion + renderer pair per participant.

    ros2 launch rsatalker_ros rsatalker.launch.py kinship:=blood hierarchy:=unequal senior:=alice label:=mother-son
    ros2 launch rsatalker_ros rsatalker.launch.py source:=wav          # the bundled demo conversation

The nodes and their parameters come from rsatalker_ros.ros.graph (config/graph.yaml + config/<node>.yaml), the
same description `rsatalker-bringup` starts where `ros2 launch` is not installed.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from rsatalker_ros.ros import graph
from rsatalker_ros.ros.launch_respawn import respawning_node

# name -> (default, description); "" = the value in config/graph.yaml
ARGUMENTS = {
    "participant_a": ("", "first participant id (default from config/graph.yaml)"),
    "participant_b": ("", "second participant id"),
    "kinship": ("", "relationship kinship: blood or non_blood"),
    "hierarchy": ("", "relationship hierarchy: equal or unequal"),
    "senior": ("", "senior participant id when hierarchy is unequal"),
    "label": ("", "relationship label, e.g. mother-son"),
    "source": ("", "audio source: device (microphone) or wav (bundled demo files)"),
    "device": ("", "PortAudio input device (name, part of it, or index)"),
    "config_dir": ("", "folder with graph.yaml and the node parameter files (default: the package's config/)"),
}


def _value(context, name):
    v = LaunchConfiguration(name).perform(context)
    return v if v != "" else None


def nodes_for(context, participants=None):
    """Launch actions for rsatalker_ros.ros.graph.describe() with the launch arguments."""
    v = lambda n: _value(context, n)  # noqa: E731
    if participants is None:
        a, b = v("participant_a"), v("participant_b")
        participants = [a, b] if a and b else None
    specs = graph.describe(participants=participants, kinship=v("kinship"), hierarchy=v("hierarchy"),
                           senior=v("senior"), label=v("label"), source=v("source"), device=v("device"),
                           config_dir=v("config_dir"))
    # each node is started again when it dies (not after exit code 0 or SIGINT / SIGTERM): see launch_respawn;
    # the renderers at graph.yaml's renderer_nice
    return [action for s in specs for action in respawning_node(
        package="rsatalker_ros", executable=s.executable, name=s.name, parameters=[s.parameters], output="screen",
        **s.launch_options)]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(n, default_value=d, description=desc) for n, (d, desc) in ARGUMENTS.items()]
        + [OpaqueFunction(function=nodes_for)])
