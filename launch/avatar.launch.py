"""One participant: audio capture, motion and renderer (no conversation node; the relationship from arguments).

    ros2 launch rsatalker_ros avatar.launch.py participant:=alice kinship:=blood hierarchy:=unequal senior:=alice

The partner's audio is absent (silence) unless something publishes /rsatalker/<partner>/audio. Nodes and
parameters come from rsatalker_ros.ros.graph, as for rsatalker.launch.py and `rsatalker-bringup --participants X`.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from rsatalker_ros.ros import graph
from rsatalker_ros.ros.launch_respawn import respawning_node

ARGUMENTS = {
    "participant": ("alice", "participant id"),
    "kinship": ("", "relationship kinship: blood or non_blood (default from config/graph.yaml)"),
    "hierarchy": ("", "relationship hierarchy: equal or unequal"),
    "senior": ("", "senior participant id when hierarchy is unequal (this participant, or '' when equal)"),
    "label": ("", "relationship label"),
    "source": ("", "audio source: device or wav"),
    "device": ("", "PortAudio input device"),
    "config_dir": ("", "folder with graph.yaml and the node parameter files"),
}


def nodes_for(context):
    def v(name):
        x = LaunchConfiguration(name).perform(context)
        return x if x != "" else None
    specs = graph.describe(participants=[v("participant")], kinship=v("kinship"), hierarchy=v("hierarchy"),
                           senior=v("senior"), label=v("label"), source=v("source"), device=v("device"),
                           with_conversation=False, config_dir=v("config_dir"))
    # each node is started again when it dies (not after exit code 0 or SIGINT / SIGTERM): see launch_respawn;
    # the renderer at graph.yaml's renderer_nice
    return [action for s in specs for action in respawning_node(
        package="rsatalker_ros", executable=s.executable, name=s.name, parameters=[s.parameters], output="screen",
        **s.launch_options)]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(n, default_value=d, description=desc) for n, (d, desc) in ARGUMENTS.items()]
        + [OpaqueFunction(function=nodes_for)])
