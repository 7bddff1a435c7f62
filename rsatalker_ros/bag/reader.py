"""BagReader: the topics and messages of an MCAP bag (rosbag2's layout, or any ros2msg/cdr MCAP), read with the
``mcap`` library under limits: the file is untrusted, so no record, chunk or definition larger than the limits is
ever allocated and nothing in it is executed. Pure Python.

    bag = BagReader("talk.mcap")
    for t in bag.topics(): print(t.name, t.type_name, t.count)
    for topic, log_ns, publish_ns, cdr in bag.messages(["/rsatalker/alice/audio"]): ...
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass, field

import yaml
from mcap.exceptions import McapError
from mcap.records import Channel, Chunk, Footer, Message, Schema, Statistics
from mcap.stream_reader import StreamReader, breakup_chunk

MAGIC_AND_FOOTER = 8 + 1 + 8 + 20     # trailing magic + footer record (opcode, length, 8 + 8 + 4 bytes)


class BagError(ValueError):
    """The file is not a readable ros2msg/cdr MCAP bag, or exceeds a limit; the message says what and where."""


@dataclass
class TopicInfo:
    name: str
    type_name: str            # 'pkg/msg/Type' (the schema name)
    definition: str           # ros2msg text
    qos: list = field(default_factory=list)   # offered QoS profiles (dicts, rosbag2 v9 spelling) where recorded
    type_hash: str = ""
    count: int = 0


class _Bounded(io.RawIOBase):
    """A read-only file view whose read(n) never asks for more than what is left in the file."""

    def __init__(self, f, size: int):
        self.f, self.size = f, size

    def readable(self):
        return True

    def readinto(self, b) -> int:
        n = min(len(b), max(0, self.size - self.f.tell()))
        data = self.f.read(n)
        b[:len(data)] = data
        return len(data)


class BagReader:
    def __init__(self, path: str, max_record_bytes: int = 256 << 20, max_definition_bytes: int = 1 << 20):
        self.path = str(path)
        if not os.path.isfile(self.path):
            raise BagError(f"{self.path}: no such bag file (expected an .mcap file)")
        self.size = os.path.getsize(self.path)
        self.max_record_bytes, self.max_definition_bytes = max_record_bytes, max_definition_bytes
        self._topics: dict[int, TopicInfo] | None = None
        self.start_ns = self.end_ns = 0

    def _records(self, offset: int = 0, skip_magic: bool = False):
        with open(self.path, "rb") as f:
            f.seek(offset)
            reader = StreamReader(io.BufferedReader(_Bounded(f, self.size)), skip_magic=skip_magic, emit_chunks=True,
                                  record_size_limit=self.max_record_bytes)
            try:
                for rec in reader.records:
                    if isinstance(rec, Chunk):
                        if rec.uncompressed_size > self.max_record_bytes:
                            raise BagError(f"{self.path}: a chunk of {rec.uncompressed_size} bytes exceeds the "
                                           f"limit of {self.max_record_bytes} bytes")
                        yield from breakup_chunk(rec, validate_crc=True)
                    else:
                        yield rec
            except BagError:
                raise
            except (McapError, EOFError, struct.error, UnicodeDecodeError, ValueError, KeyError) as err:
                raise BagError(f"{self.path}: not a readable MCAP file ({type(err).__name__}: {err})") from err

    def _summary_offset(self) -> int:
        """Where the summary section starts (0 when the file has none)."""
        if self.size < MAGIC_AND_FOOTER + 8:
            raise BagError(f"{self.path}: {self.size} bytes is too short for an MCAP file")
        with open(self.path, "rb") as f:
            f.seek(self.size - MAGIC_AND_FOOTER)
            footer = f.read(MAGIC_AND_FOOTER)
        if footer[-8:] != b"\x89MCAP0\r\n" or footer[0] != 0x02:
            return 0          # truncated (a recording that was killed): scan the data section instead
        summary_start = struct.unpack_from("<Q", footer, 9)[0]
        return summary_start if 0 < summary_start < self.size else 0

    def _add(self, schemas: dict, topics: dict, rec) -> None:
        if isinstance(rec, Schema):
            if rec.encoding != "ros2msg":
                raise BagError(f"{self.path}: schema {rec.name!r} is encoded {rec.encoding!r}; expected 'ros2msg'")
            if len(rec.data) > self.max_definition_bytes:
                raise BagError(f"{self.path}: the definition of {rec.name!r} is larger than "
                               f"{self.max_definition_bytes} bytes")
            schemas[rec.id] = rec
        elif isinstance(rec, Channel) and rec.id not in topics:
            if rec.message_encoding != "cdr":
                raise BagError(f"{self.path}: topic {rec.topic} is encoded {rec.message_encoding!r}; expected 'cdr'")
            if rec.schema_id not in schemas:
                raise BagError(f"{self.path}: topic {rec.topic} names schema {rec.schema_id}, which is not in the file")
            s = schemas[rec.schema_id]
            try:
                qos = yaml.safe_load(rec.metadata.get("offered_qos_profiles", "")) or []
            except yaml.YAMLError:
                qos = []
            topics[rec.id] = TopicInfo(rec.topic, s.name, s.data.decode("utf-8", "replace"),
                                       qos if isinstance(qos, list) else [], rec.metadata.get("topic_type_hash", ""))

    def topics(self) -> list[TopicInfo]:
        """Every topic with its type, definition, recorded QoS and message count (from the summary, or a scan)."""
        if self._topics is None:
            schemas, topics = {}, {}
            offset = self._summary_offset()
            stats = None
            if offset:
                for rec in self._records(offset, skip_magic=True):
                    self._add(schemas, topics, rec)
                    if isinstance(rec, Statistics):
                        stats = rec
                    if isinstance(rec, Footer):
                        break
            if stats is None:       # no summary: count by reading everything once
                counts, first, last = {}, None, 0
                for rec in self._records():
                    self._add(schemas, topics, rec)
                    if isinstance(rec, Message):
                        counts[rec.channel_id] = counts.get(rec.channel_id, 0) + 1
                        first = rec.log_time if first is None else min(first, rec.log_time)
                        last = max(last, rec.log_time)
                stats_counts, self.start_ns, self.end_ns = counts, first or 0, last
            else:
                stats_counts, self.start_ns, self.end_ns = (stats.channel_message_counts, stats.message_start_time,
                                                            stats.message_end_time)
            for cid, t in topics.items():
                t.count = int(stats_counts.get(cid, 0))
            self._topics = topics
        return list(self._topics.values())

    @property
    def duration_ns(self) -> int:
        self.topics()
        return max(0, self.end_ns - self.start_ns)

    def messages(self, topics: list[str] | None = None):
        """(TopicInfo, log_time_ns, publish_time_ns, cdr bytes) in file order (rosbag2: receive order)."""
        self.topics()
        wanted = None if topics is None else set(topics)
        schemas, seen = {}, {}
        for rec in self._records():
            if isinstance(rec, (Schema, Channel)):
                self._add(schemas, seen, rec)
            elif isinstance(rec, Message):
                t = seen.get(rec.channel_id)
                if t is None:
                    raise BagError(f"{self.path}: a message on channel {rec.channel_id} comes before its channel")
                if wanted is None or t.name in wanted:
                    yield self._topics.get(rec.channel_id, t), rec.log_time, rec.publish_time, rec.data
