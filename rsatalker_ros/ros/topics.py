"""Topic and frame names of the graph (REP-144 names; README "Topics"). Pure Python, no rclpy."""

import re

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

CONVERSATION = "/rsatalker/conversation"
RELATION = "/rsatalker/relation"
VOICES_TRACKED = "/humans/voices/tracked"


def check_participant_id(pid: str) -> str:
    """A participant id is a REP-144 name token: lower case, starts with a letter, then [a-z0-9_]."""
    if not isinstance(pid, str) or not _NAME.match(pid):
        raise ValueError(f"participant id {pid!r} is not a valid name; expected [a-z][a-z0-9_]* (e.g. 'alice')")
    return pid


def audio(pid: str) -> str:
    return f"/rsatalker/{check_participant_id(pid)}/audio"


def audio_info(pid: str) -> str:
    return f"/rsatalker/{check_participant_id(pid)}/audio_info"


def is_speaking(pid: str) -> str:
    return f"/humans/voices/{check_participant_id(pid)}/is_speaking"


def participant(pid: str, leaf: str) -> str:
    """/rsatalker/<pid>/<leaf>: motion, mesh, mesh_topology, mesh_marker, head_pose, image_raw, camera_info, ..."""
    return f"/rsatalker/{check_participant_id(pid)}/{leaf}"


def head_frame(pid: str) -> str:
    return f"{check_participant_id(pid)}/head"


def camera_frame(pid: str, eye: str = "") -> str:
    return f"{check_participant_id(pid)}/camera{'_' + eye if eye else ''}_optical_frame"
