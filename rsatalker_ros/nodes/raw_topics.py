"""rclpy helpers for tools that carry messages as raw CDR bytes (the recorder, the player, the Foxglove bridge):
message classes from type names, QoS matched to a topic's publishers (as rosbag2 does), discovery of topics by
pattern, and header re-stamping."""

from __future__ import annotations

import importlib

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from rsatalker_ros.bag.msgdef import split_type
from rsatalker_ros.bag.select import choose
from rsatalker_ros.bag.writer import qos_dict
from rsatalker_ros.ros.convert import ns_to_stamp, stamp_to_ns


def message_class(type_name: str):
    """'pkg/msg/Type' -> the generated Python class; ValueError naming the type when it is not installed."""
    package, name = split_type(type_name)
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"message type {type_name} is not installed here ({err}); build or install {package}") \
            from err


def qos_to_dict(profile) -> dict:
    """An rclpy QoSProfile -> rosbag2's dict spelling (for a bag's offered_qos_profiles)."""
    rel = "best_effort" if profile.reliability == ReliabilityPolicy.BEST_EFFORT else "reliable"
    dur = "transient_local" if profile.durability == DurabilityPolicy.TRANSIENT_LOCAL else "volatile"
    hist = "keep_all" if profile.history == HistoryPolicy.KEEP_ALL else "keep_last"
    return qos_dict(rel, dur, hist, max(1, int(profile.depth)))


def qos_from_dict(d: dict | None, depth: int = 10) -> QoSProfile:
    """A recorded offered profile -> the QoSProfile to publish it again with (reliable, volatile when absent)."""
    d = d or {}
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=max(int(d.get("depth", depth) or depth), 1),
                      reliability=ReliabilityPolicy.BEST_EFFORT if d.get("reliability") == "best_effort"
                      else ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if d.get("durability") == "transient_local"
                      else DurabilityPolicy.VOLATILE)


def subscription_qos(publishers, depth: int) -> QoSProfile:
    """What a recorder subscribes with (rosbag2's rule): reliable when every publisher is reliable, transient
    local when every publisher is (so latched topics arrive), else best effort / volatile, which match anyone."""
    pubs = list(publishers)
    reliable = bool(pubs) and all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in pubs)
    latched = bool(pubs) and all(p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in pubs)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def discover(node, include: list[str], exclude: list[str], known) -> list[tuple[str, str, list]]:
    """Topics now in the graph that match the patterns and are not in ``known``: [(topic, type, publishers)];
    a topic shows up once it has a publisher (its type and offered QoS come from them)."""
    found = []
    names = dict(node.get_topic_names_and_types())
    for topic in choose(sorted(names), include, exclude):
        if topic in known:
            continue
        pubs = node.get_publishers_info_by_topic(topic)
        if pubs:
            found.append((topic, names[topic][0], pubs))
    return found


def type_hash(publishers) -> str:
    """The RIHS01 type hash the publishers advertise ('' when unknown)."""
    for p in publishers:
        h = str(getattr(p, "topic_type_hash", "") or "")
        if h.startswith("RIHS01_"):
            return h
    return ""


def restamp(msg, shift_ns: int) -> bool:
    """Move ``msg.header.stamp`` by ``shift_ns`` in place; False when the message has no header stamp."""
    header = getattr(msg, "header", None)
    stamp = getattr(header, "stamp", None)
    if stamp is None or not hasattr(stamp, "nanosec"):
        return False
    ns_to_stamp(max(0, stamp_to_ns(stamp) + shift_ns), stamp)
    return True
