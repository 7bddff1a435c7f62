"""launch_ros Nodes that launch starts again only when they die (rsatalker_ros.ros.respawn decides), for the launch
files in launch/.

launch_ros's own ``respawn=True`` restarts a node after ANY exit while launch runs, also after a clean one (exit
code 0: a finished wav, a node stopped with ``kill -INT``). Instead, each node comes with an ``OnProcessExit``
handler: when the node died (non-zero exit code, or a signal other than SIGINT / SIGTERM) and launch is not shutting
down, it logs why and returns a ``TimerAction`` that starts a new Node action with the same arguments (an action
executes only once) and its own handler, with rsatalker-bringup's back-off; a node that keeps dying is given up on
(logged; the rest of the graph keeps running). Launch's shutdown cancels a pending respawn (TimerAction's
``cancel_on_shutdown``).

launch and launch_ros are imported when a launch file calls ``respawning_node``, so this module imports without
ROS 2's launch installed.
"""

from __future__ import annotations

import time

from rsatalker_ros.ros.respawn import Respawn, describe_exit, died


def respawning_node(respawn: Respawn | None = None, **node_kwargs) -> list:
    """[RegisterEventHandler, Node]: a ``launch_ros.actions.Node(**node_kwargs)`` (``name`` required: the back-off
    is kept per name) that is started again after it died. ``respawn``: the back-off policy, shared by the node's
    successive incarnations (default: a new ``Respawn()``)."""
    from launch.actions import LogInfo, RegisterEventHandler, TimerAction
    from launch.event_handlers import OnProcessExit
    from launch_ros.actions import Node

    name = node_kwargs.get("name")
    if not name:
        raise ValueError("respawning_node needs the node's name= (its respawns are counted by name)")
    policy = respawn if respawn is not None else Respawn()
    node = Node(**node_kwargs)

    def on_exit(event, context):
        if context.is_shutdown:
            return None                                # launch is stopping everything: nothing comes back
        how = describe_exit(event.returncode)
        if not died(event.returncode):
            return [LogInfo(msg=f"[{name}] ended ({how}); not respawned")]
        delay = policy.after_death(name, time.monotonic())
        if delay is None:
            return [LogInfo(msg=f"[{name}] died ({how}) {len(policy.deaths[name])} times within "
                                f"{policy.window_s:g} s; giving up (not respawned)")]
        forget_node_name(context, getattr(event.action, "node_name", name))
        return [LogInfo(msg=f"[{name}] died ({how}); respawning in {delay:.1f} s"),
                TimerAction(period=delay, actions=respawning_node(policy, **node_kwargs))]

    return [RegisterEventHandler(OnProcessExit(target_action=node, on_exit=on_exit, handle_once=True)), node]


def forget_node_name(context, node_name: str) -> None:
    """launch_ros counts the Node actions per full name ('/motion_alice') in the launch context and warns 'there are
    now at least 2 nodes with the name ...' when one executes again: the dead one no longer counts."""
    counts = getattr(context.locals, "unique_ros_node_names", None)
    if counts is not None and counts.get(node_name, 0) > 0:
        counts[node_name] -= 1
