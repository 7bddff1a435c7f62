"""Which topics a recorder, player or bridge takes: the graph's own topics by default, or shell-style patterns.
Pure Python."""

from __future__ import annotations

from fnmatch import fnmatchcase

from rsatalker_ros.ros import topics

#: per-participant topics of the graph (README "Topics"), relative to /rsatalker/<pid>/
PARTICIPANT_LEAVES = ("audio", "audio_info", "motion", "mesh", "mesh_topology", "mesh_marker", "head_pose",
                      "image_raw", "camera_info", "image_raw/compressed")


def graph_topics(participants: list[str]) -> list[str]:
    """Every topic the rsatalker_ros graph publishes for these participants."""
    out = [topics.CONVERSATION, topics.RELATION, topics.VOICES_TRACKED, "/diagnostics"]
    for pid in participants:
        out += [topics.participant(pid, leaf) for leaf in PARTICIPANT_LEAVES] + [topics.is_speaking(pid)]
    return out


def matches(name: str, patterns: list[str]) -> bool:
    """``name`` matches one of the shell-style ``patterns`` ('*' stops at nothing: '/rsatalker/*/audio')."""
    return any(fnmatchcase(name, p) for p in patterns)


def choose(available: list[str], include: list[str], exclude: list[str] = ()) -> list[str]:
    """The available topic names that match ``include`` and none of ``exclude``, in the order given."""
    return [t for t in available if matches(t, include) and not matches(t, list(exclude))]
