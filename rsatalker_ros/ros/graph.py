"""The node graph as data: which nodes run, with which names and parameters. Pure Python (no rclpy, no launch).

    specs = describe(participants=["alice", "bob"], kinship="blood", hierarchy="unequal", senior="alice")

launch/rsatalker.launch.py, launch/avatar.launch.py (real ROS 2 installs, launch_ros) and ``rsatalker-bringup``
(separate processes here) all turn the same ``describe()`` output into running nodes, so they start the same
graph from the same config/ files:
  - config/graph.yaml: participants (head, avatar, placement, wav file), relationship, audio source, processes;
  - config/<executable>.yaml: ROS 2 parameter files; their ``ros__parameters`` are each node's defaults.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

from rsatalker_ros.files import BadFileError, load_yaml
from rsatalker_ros.ros.topics import check_participant_id
from rsatalker_ros.social.relation import Relation

PACKAGE_DIR = Path(__file__).resolve().parent.parent
EXECUTABLES = ("audio_capture", "conversation", "motion", "renderer")
PROCESS_MODES = ("separate", "per_participant", "single")
RESPAWN_DELAY_S = 1.0      # a dead node is started again after this long, doubled for each further death within a
                           # minute (rsatalker_ros.ros.respawn: the launch files and rsatalker-bringup)


def default_config_dir() -> Path:
    """config/ of the source checkout, or share/rsatalker_ros/config of an installed package."""
    src = PACKAGE_DIR.parent / "config"
    if (src / "graph.yaml").is_file():
        return src
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory("rsatalker_ros")) / "config"
    except Exception:  # noqa: BLE001 - ament_index missing or package not installed
        return src


@dataclass(frozen=True)
class NodeSpec:
    executable: str                 # audio_capture | conversation | motion | renderer
    name: str                       # ROS node name
    parameters: dict = field(default_factory=dict)
    group: str = ""                 # nodes with the same group may share one process
    nice: int = 0                   # CPU niceness of its process (0..19; a process's: the lowest of its nodes')

    @property
    def module(self) -> str:
        return f"rsatalker_ros.nodes.{self.executable}"

    @property
    def launch_options(self) -> dict:
        """launch_ros Node arguments beyond name and parameters: the niceness as a ``nice`` prefix (launch keeps
        its nodes in one session, where plain niceness ranks them)."""
        return {"prefix": f"nice -n {self.nice}"} if self.nice else {}


def _node_defaults(config_dir: Path, executable: str) -> dict:
    path = config_dir / f"{executable}.yaml"
    doc = load_yaml(path, f"parameter file of {executable}")
    if not isinstance(doc.get(executable), dict) or not isinstance(doc[executable].get("ros__parameters"), dict):
        raise BadFileError(path, f"must hold '{executable}: ros__parameters: {{name: value, ...}}'")
    return dict(doc[executable]["ros__parameters"])


def load_graph_config(config_dir: Path | str | None = None) -> dict:
    config_dir = Path(config_dir) if config_dir else default_config_dir()
    path = config_dir / "graph.yaml"
    return check_graph_config(load_yaml(path, "graph description"), path)


def _resolve_wav(path: str) -> str:
    """A graph.yaml wav entry: relative to the rsatalker_ros package (the shipped demo files)."""
    p = Path(path)
    return str(p if p.is_absolute() else (PACKAGE_DIR / p))


def describe(participants: list[str] | None = None, kinship: str | None = None, hierarchy: str | None = None,
             senior: str | None = None, label: str | None = None, source: str | None = None,
             wav_files: list[str] | None = None, device: str | None = None, loop: bool | None = None,
             heads: list[str] | None = None, processes: str | None = None, with_conversation: bool | None = None,
             overrides: dict | None = None, config_dir: Path | str | None = None,
             renderer_nice: int | None = None) -> list[NodeSpec]:
    """The graph for these arguments (None = the value in config/graph.yaml).

    participants: ids; the first ones take the head, avatar, placement and wav file of graph.yaml's entries in
    order. with_conversation: run the conversation node (default: with two or more participants).
    wav_files: relative paths are resolved against the current directory (graph.yaml's against the package).
    overrides: {node name or executable: {parameter: value}} applied last (e.g. {"renderer": {"width": 256}}).
    renderer_nice: the renderers' CPU niceness (graph.yaml's renderer_nice).
    Raises ValueError for an unknown relationship, bad ids, or a senior who is not a participant.
    """
    config_dir = Path(config_dir) if config_dir else default_config_dir()
    g = load_graph_config(config_dir)
    entries = g["participants"]
    ids = list(participants) if participants else [e["id"] for e in entries]
    if not 1 <= len(ids) <= len(entries) or len(set(ids)) != len(ids):
        raise ValueError(f"participants {ids}: expected 1..{len(entries)} distinct ids (graph.yaml describes "
                         f"{len(entries)})")
    for pid in ids:
        check_participant_id(pid)
    if with_conversation is None:
        with_conversation = len(ids) > 1
    rel_cfg = g["relation"]
    rel = Relation.parse(kinship if kinship is not None else rel_cfg["kinship"],
                         hierarchy if hierarchy is not None else rel_cfg["hierarchy"],
                         senior if senior is not None else rel_cfg["senior"],
                         label if label is not None else rel_cfg["label"])
    if rel.senior and rel.senior not in ids:
        raise ValueError(f"the senior participant {rel.senior!r} is not one of {ids}")
    relation = {"relation_kinship": rel.kinship.name.lower(), "relation_hierarchy": rel.hierarchy.name.lower(),
                "relation_senior": rel.senior, "relation_label": rel.label}
    source = source or g["source"]
    if source not in ("device", "wav"):
        raise ValueError(f"source {source!r}: expected 'device' or 'wav'")
    processes = processes or g.get("processes", "separate")
    if processes not in PROCESS_MODES:
        raise ValueError(f"processes {processes!r}: expected one of {PROCESS_MODES}")
    people = entries[:len(ids)]
    if heads:
        if len(heads) != len(ids):
            raise ValueError(f"{len(heads)} heads for {len(ids)} participants")
        people = [dict(e, head=h) for e, h in zip(people, heads)]
    renderer_nice = int(g.get("renderer_nice", 0) if renderer_nice is None else renderer_nice)
    if not 0 <= renderer_nice <= 19:
        raise ValueError(f"renderer_nice {renderer_nice}: expected 0..19 (0 = the priority of the other nodes)")
    grp = (lambda name: "graph") if processes == "single" else \
        (lambda name: name) if processes == "separate" else None

    specs = []
    audio = _node_defaults(config_dir, "audio_capture")
    audio.update(participants=ids, source=source)
    if source == "wav":
        # files given by the user are relative to the current directory; graph.yaml's to the package
        audio["wav_files"] = ([str(Path(f).expanduser().absolute()) for f in wav_files] if wav_files
                              else [_resolve_wav(e["wav"]) for e in people])
    if device is not None:
        audio["device"] = device
    if loop is not None:
        audio["loop"] = bool(loop)
    specs.append(NodeSpec("audio_capture", "audio_capture", audio, grp("audio_capture") if grp else "audio"))
    if with_conversation:
        conv = _node_defaults(config_dir, "conversation")
        conv.update(participants=ids, **relation)
        specs.append(NodeSpec("conversation", "conversation", conv, grp("conversation") if grp else "audio"))
    for i, (pid, e) in enumerate(zip(ids, people)):
        partner = ids[1 - i] if len(ids) == 2 else (ids[(i + 1) % len(ids)] if len(ids) > 1 else "partner")
        mot = _node_defaults(config_dir, "motion")
        mot.update(participant=pid, partner=partner, head=e["head"], head_position=[float(x) for x in e["position"]],
                   head_yaw_deg=float(e["yaw_deg"]), **relation)
        # participants' frame grids evenly staggered (0 and 20 ms for two): their frames, and so the renderers'
        # work, alternate instead of landing on the CPU at the same moment
        mot.setdefault("frame_phase_ms", 0.0)
        mot["frame_phase_ms"] = (float(mot["frame_phase_ms"]) + 40.0 * i / len(ids)) % 40.0
        if not with_conversation:
            mot["relation_source"] = "parameters"
        ren = _node_defaults(config_dir, "renderer")
        ren.update(participant=pid, head=e["head"], avatar=e.get("avatar", "") or "")
        specs.append(NodeSpec("motion", f"motion_{pid}", mot, grp(f"motion_{pid}") if grp else f"avatar_{pid}"))
        specs.append(NodeSpec("renderer", f"renderer_{pid}", ren, grp(f"renderer_{pid}") if grp else f"avatar_{pid}",
                              nice=renderer_nice))
    if source == "wav":
        # a recording has a beginning: play it once every node that listens to the audio is matched
        listeners = {pid: 0 for pid in ids}
        for spec in specs:
            if spec.executable == "conversation":
                for pid in ids:
                    listeners[pid] += 1
            elif spec.executable == "motion":
                for pid in {spec.parameters.get("participant"), spec.parameters.get("partner")} & set(ids):
                    listeners[pid] += 1
        audio["wait_for_subscribers"] = min(listeners.values())
    if overrides:
        out = []
        for s in specs:
            p = copy.deepcopy(s.parameters)
            for key in (s.executable, s.name):
                for name, value in overrides.get(key, {}).items():
                    # "chunk_ms=40" for a parameter whose default is 20.0: ROS 2 refuses an integer for a double
                    # parameter, so a whole number given where the default is a float is that float
                    if isinstance(p.get(name), float) and isinstance(value, int) and not isinstance(value, bool):
                        value = float(value)
                    p[name] = value
            out.append(NodeSpec(s.executable, s.name, p, s.group, s.nice))
        specs = out
    return specs


def groups(specs: list[NodeSpec]) -> dict[str, list[NodeSpec]]:
    """Process groups in start order: {group: [specs]}."""
    out: dict[str, list[NodeSpec]] = {}
    for s in specs:
        out.setdefault(s.group or s.name, []).append(s)
    return out


def group_nice(members: list[NodeSpec]) -> int:
    """The niceness of a process running ``members``: the lowest of theirs (a renderer sharing its process with a
    motion node does not slow the motion node down)."""
    return min(s.nice for s in members)


def params_file_dict(specs: list[NodeSpec]) -> dict:
    """A ROS 2 parameter file ({node name: {ros__parameters: {...}}}) for these nodes."""
    return {s.name: {"ros__parameters": copy.deepcopy(s.parameters)} for s in specs}


def check_graph_config(g: dict, path) -> dict:
    """BadFileError naming the entry unless graph.yaml ``g`` has the documented shape (config/graph.yaml)."""
    def need(cond, what):
        if not cond:
            raise BadFileError(path, f"graph description: {what}")
    people = g.get("participants")
    need(isinstance(people, list) and 1 <= len(people) <= 16, "'participants' must be a list of 1..16 entries")
    for i, e in enumerate(people):
        need(isinstance(e, dict), f"participants[{i}] must be a mapping (id, head, avatar, position, yaw_deg, wav)")
        for key in ("id", "head", "wav"):
            need(isinstance(e.get(key), str) and 0 < len(e[key]) <= 4096, f"participants[{i}].{key} must be a "
                 "non-empty string")
        need(isinstance(e.get("avatar", ""), (str, type(None))), f"participants[{i}].avatar must be a string")
        pos = e.get("position")
        need(isinstance(pos, list) and len(pos) == 3 and all(_finite_number(x) for x in pos),
             f"participants[{i}].position must be 3 numbers [m] (x, y, z)")
        need(_finite_number(e.get("yaw_deg")), f"participants[{i}].yaw_deg must be a number [deg]")
    rel = g.get("relation")
    need(isinstance(rel, dict) and all(isinstance(rel.get(k), str) and len(rel[k]) <= 256
                                       for k in ("kinship", "hierarchy", "senior", "label")),
         "'relation' must map kinship, hierarchy, senior and label to strings (at most 256 characters)")
    need(isinstance(g.get("source"), str), "'source' must be 'device' or 'wav'")
    need(isinstance(g.get("processes", "separate"), str), f"'processes' must be one of {PROCESS_MODES}")
    nice = g.get("renderer_nice", 0)
    need(isinstance(nice, int) and not isinstance(nice, bool) and 0 <= nice <= 19,
         "'renderer_nice' must be an integer 0..19 (the renderers' CPU niceness)")
    return g


def _finite_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and abs(x) < float("inf")
