"""Untrusted files: the one error every loader raises, and the checks they share (size, YAML, JSON, budget).

Every loader of a user-supplied file (FLAME pickle, motion checkpoint, avatar, head .npz, wav, YAML configs, the
graph description) raises ``BadFileError`` -- a ``ValueError`` -- whose message names the file, what was wrong and
what was expected; no other exception type escapes for a bad file. Loaders check declared sizes against the file
size and the documented bounds (docs/file_limits.md) *before* allocating, so loading a file never needs more than
a small multiple of its size in memory.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import yaml

MAX_CONFIG_BYTES = 1 << 20      # YAML configs / graph description / override values: at most 1 MiB
MAX_NESTING = 32                # nesting depth of YAML / JSON documents (configs are 2-4 levels deep)
NPZ_EXPANSION = 64              # an .npz may unpack to at most 64 x its size + 1 MiB (the shipped heads: 9 x)


class BadFileError(ValueError):
    """A file (or a value that stands for one, e.g. a ``--set`` override) is unreadable, malformed or out of
    bounds. The message names the file, what was wrong and what was expected."""

    def __init__(self, path, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{self.path}: {problem}")


def checked_size(path, what: str, max_bytes: int, min_bytes: int = 1) -> int:
    """The size of ``path`` in bytes; BadFileError if it is not a regular file or its size is outside
    [min_bytes, max_bytes] (``what`` names the kind of file, e.g. 'wav file')."""
    p = Path(path)
    if not p.is_file():
        raise BadFileError(p, f"{what} does not exist (or is not a regular file)")
    size = p.stat().st_size
    if size < min_bytes:
        raise BadFileError(p, f"{what} has {size} bytes; expected at least {min_bytes}")
    if size > max_bytes:
        raise BadFileError(p, f"{what} has {size} bytes; at most {max_bytes} are accepted")
    return size


def check_budget(path, what: str, n_bytes: int, budget: int) -> None:
    """BadFileError unless allocating ``n_bytes`` for ``what`` stays within ``budget`` bytes (a loader's memory
    budget, proportional to its file's size)."""
    if n_bytes > budget:
        raise BadFileError(path, f"{what} would need {n_bytes / 2**20:.1f} MiB, more than the "
                                 f"{budget / 2**20:.1f} MiB this file's size allows (declared sizes larger than "
                                 "the data in the file?)")


# --- JSON -------------------------------------------------------------------------------------------------------
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def nesting_depth(text: str) -> int:
    """Deepest bracket nesting of a JSON text ([ and { outside strings); linear time, no recursion."""
    codes = np.frombuffer(_JSON_STRING.sub("", text).encode("utf-8", "replace"), np.uint8)
    step = np.isin(codes, (ord("["), ord("{"))).astype(np.int64) - np.isin(codes, (ord("]"), ord("}")))
    return int(np.cumsum(step).max(initial=0))


def parse_json(path, what: str, text: str, max_chars: int = 1 << 20, max_depth: int = MAX_NESTING):
    """``text`` (``what`` inside ``path``, e.g. "metadata 'config'") parsed as JSON after checking its length and
    nesting; BadFileError otherwise."""
    if not isinstance(text, str):
        raise BadFileError(path, f"{what} is a {type(text).__name__}; expected JSON text")
    if len(text) > max_chars:
        raise BadFileError(path, f"{what} has {len(text)} characters; at most {max_chars} are accepted")
    if "[" in text or "{" in text:
        depth = nesting_depth(text)
        if depth > max_depth:
            raise BadFileError(path, f"{what} is nested {depth} levels deep; at most {max_depth} are accepted")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:   # RecursionError: unreachable after the depth check
        raise BadFileError(path, f"{what} is corrupt JSON ({e})") from e


def parse_json_object(path, what: str, text: str, **limits) -> dict:
    out = parse_json(path, what, text, **limits)
    if not isinstance(out, dict):
        raise BadFileError(path, f"{what} is a JSON {type(out).__name__}; expected an object")
    return out


# --- YAML -------------------------------------------------------------------------------------------------------
class _BoundedSafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader (plain data only: no ``!!python`` tags) without aliases, with a nesting limit and no
    repeated keys, so a small document cannot expand into a large object graph (billion laughs), recurse deeply
    or silently overwrite one setting with another."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not accepted in rsatalker_ros "
                                              "configs; write the value out", event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_NESTING} levels",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice (which one is "
                                                        "meant?)", key_node.start_mark)
            if isinstance(key, (str, int, float, bool)):
                seen.add(key)
        return super().construct_mapping(node, deep)


def parse_yaml(text: str, source: str = "<value>"):
    """YAML text -> plain data (dicts, lists, str, int, float, bool, None, dates); BadFileError naming ``source``
    for anything else: python tags, aliases, deep nesting, a repeated key, more than MAX_CONFIG_BYTES, invalid
    YAML."""
    if len(text) > MAX_CONFIG_BYTES:
        raise BadFileError(source, f"YAML of {len(text)} characters; at most {MAX_CONFIG_BYTES} are accepted")
    loader = _BoundedSafeLoader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as e:
        raise BadFileError(source, f"not a plain-data YAML document (mappings, lists, numbers, strings only): "
                                   f"{' '.join(str(e).split())}") from e
    except RecursionError as e:   # flow collections nest inside the parser before compose_node sees them
        raise BadFileError(source, f"YAML nested too deeply (at most {MAX_NESTING} levels)") from e
    finally:
        loader.dispose()


def load_yaml(path, what: str = "YAML file", mapping: bool = True):
    """Read and parse a YAML file with ``parse_yaml``; ``mapping``: the document must be a mapping (an empty
    file gives {})."""
    checked_size(path, what, MAX_CONFIG_BYTES, min_bytes=0)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BadFileError(path, f"{what} is not readable UTF-8 text ({e})") from e
    doc = parse_yaml(text, str(path))
    if mapping:
        doc = {} if doc is None else doc
        if not isinstance(doc, dict):
            raise BadFileError(path, f"{what} holds a {type(doc).__name__}; expected a mapping (key: value lines)")
    return doc


def read_npz(path, what: str, max_bytes: int, expansion: int = NPZ_EXPANSION) -> dict[str, np.ndarray]:
    """The arrays of an .npz file (numbers and strings only, never pickles). Before anything is unpacked, each
    member's declared size is checked against ``expansion`` x the file's size and its .npy header (shape x item
    size) against that declared size, so neither a zip bomb nor a header claiming a huge shape can allocate
    beyond the budget. BadFileError naming the file otherwise."""
    size = checked_size(path, what, max_bytes)
    budget = expansion * size + (1 << 20)
    fmt = np.lib.format
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
            check_budget(path, f"unpacking its {len(members)} arrays", sum(m.file_size for m in members), budget)
            for m in members:
                name = m.filename[:-4] if m.filename.endswith(".npy") else m.filename
                with zf.open(m) as f:
                    _check_npy_header(f, m.file_size, path, f"array {name!r}")
                with zf.open(m) as f:
                    out[name] = fmt.read_array(f, allow_pickle=False)
    except BadFileError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError, NotImplementedError, RuntimeError) as e:
        raise BadFileError(path, f"corrupt or not a readable .npz file ({type(e).__name__}: {e})") from e
    return out


def _check_npy_header(f, size: int, path, what: str) -> None:
    """BadFileError unless the .npy stream ``f`` of ``size`` bytes holds exactly the data its header declares
    (shape x item size), of numbers or strings."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    shape, _, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)
    if dtype.hasobject or dtype.kind not in "biufU" or dtype.itemsize == 0:
        raise BadFileError(path, f"{what} has dtype {dtype}; expected numbers or strings")
    n_bytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if n_bytes != size - f.tell():
        raise BadFileError(path, f"{what} declares shape {list(shape)} of {dtype} ({n_bytes} bytes) but holds "
                                 f"{size - f.tell()} bytes")


def read_npy(path, what: str, max_bytes: int) -> np.ndarray:
    """One .npy file (numbers or strings, never pickles) whose header matches its size; BadFileError otherwise."""
    size = checked_size(path, what, max_bytes)
    try:
        with open(path, "rb") as f:
            _check_npy_header(f, size, path, what)
            f.seek(0)
            return np.lib.format.read_array(f, allow_pickle=False)
    except BadFileError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise BadFileError(path, f"not a readable .npy file ({type(e).__name__}: {e})") from e
