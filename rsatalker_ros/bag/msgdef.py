"""ROS 2 message definitions as rosbag2 stores them in a bag's schema (encoding ``ros2msg``). Pure Python.

    text = message_definition("sensor_msgs/msg/Image")

The top-level ``.msg`` text, then each dependency once (depth first, each level in sorted order, as rosbag2's
LocalMessageDefinitionSource does), each after a line of 80 ``=`` and ``MSG: <package>/<Type>``. Dependency
headers carry no ``/msg/`` (``MSG: std_msgs/Header``): Foxglove's parser rejects ``std_msgs/msg/Header`` there.
The ``.msg`` files are found through AMENT_PREFIX_PATH (``<prefix>/share/<package>/msg/<Type>.msg``), and this
package's own in the source checkout's ``msg/``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

SEPARATOR = "=" * 80
PRIMITIVES = frozenset({"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32",
                        "uint32", "int64", "uint64", "string", "wstring"})
_TYPE = re.compile(r"^(?:([A-Za-z][A-Za-z0-9_]*)/(?:msg/)?)?([A-Za-z][A-Za-z0-9_]*)$")
_SOURCE_MSG_DIR = Path(__file__).resolve().parents[2] / "msg"
MAX_MSG_FILE_BYTES = 1 << 20


def split_type(type_name: str) -> tuple[str, str]:
    """'pkg/msg/Type' or 'pkg/Type' -> ('pkg', 'Type'); ValueError for anything else."""
    m = _TYPE.match(type_name.strip())
    if not m or not m.group(1):
        raise ValueError(f"message type {type_name!r}: expected 'package/msg/Type' (e.g. 'std_msgs/msg/Header')")
    return m.group(1), m.group(2)


def msg_file(package: str, name: str, search: list[Path] | None = None) -> Path:
    """The .msg file of package/name; FileNotFoundError naming the places searched."""
    prefixes = search if search is not None else [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(
        os.pathsep) if p]
    tried = []
    for prefix in prefixes:
        path = Path(prefix) / "share" / package / "msg" / f"{name}.msg"
        tried.append(str(path))
        if path.is_file():
            return path
    if package == "rsatalker_ros" and (_SOURCE_MSG_DIR / f"{name}.msg").is_file():
        return _SOURCE_MSG_DIR / f"{name}.msg"
    where = ", ".join(tried) or "nowhere (AMENT_PREFIX_PATH is empty)"
    raise FileNotFoundError(f"no definition of {package}/msg/{name}: looked in {where}; source the ROS 2 "
                            "environment (scripts/env.sh)")


def dependencies(text: str, package: str) -> list[str]:
    """The message types a .msg text uses, as 'pkg/Type', sorted (constants and primitives left out)."""
    out = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        tokens = line.split()
        if len(tokens) < 2 or "=" in tokens[1]:           # a constant: TYPE NAME=VALUE
            continue
        type_token = re.sub(r"\[[^\]]*\]$", "", tokens[0]).split("<=", 1)[0]
        if type_token in PRIMITIVES:
            continue
        m = _TYPE.match(type_token)
        if not m:
            raise ValueError(f"field type {tokens[0]!r} in {package}: not a ROS 2 message type")
        pkg = m.group(1) or ("std_msgs" if m.group(2) == "Header" else package)
        out.add(f"{pkg}/{m.group(2)}")
    return sorted(out)


def message_definition(type_name: str, search: list[Path] | None = None, max_depth: int = 32) -> str:
    """The full ros2msg definition of ``type_name`` ('pkg/msg/Type') with its dependencies, as rosbag2 writes it."""
    package, name = split_type(type_name)
    seen: set[str] = set()

    def text_of(pkg: str, typ: str) -> str:
        path = msg_file(pkg, typ, search)
        if path.stat().st_size > MAX_MSG_FILE_BYTES:
            raise ValueError(f"{path} is larger than {MAX_MSG_FILE_BYTES} bytes: not a message definition")
        return path.read_text()

    def expand(pkg: str, typ: str, depth: int) -> str:
        if depth > max_depth:
            raise ValueError(f"{type_name}: message definitions nest deeper than {max_depth} levels")
        text = text_of(pkg, typ)
        for dep in dependencies(text, pkg):
            if dep not in seen:
                seen.add(dep)
                dpkg, dtyp = dep.split("/")
                text += f"\n{SEPARATOR}\nMSG: {dep}\n" + expand(dpkg, dtyp, depth + 1)
        return text

    return expand(package, name, 0)


def normalized(definition: str) -> str:
    """A definition without comments, blank lines or repeated spaces (two texts of one type compare equal)."""
    lines = []
    for line in definition.splitlines():
        line = " ".join(line.split("#", 1)[0].split()) if not line.startswith("MSG:") else line.strip()
        if line:
            lines.append(line)
    return "\n".join(lines)
