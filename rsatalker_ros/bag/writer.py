"""BagWriter: one MCAP file laid out as rosbag2's MCAP storage writes it (profile ``ros2``, ``ros2msg`` schemas,
``cdr`` messages, channel metadata ``offered_qos_profiles`` + ``topic_type_hash``, a ``rosbag2`` metadata record
holding the bag's metadata YAML). Pure Python on the ``mcap`` library; payloads are CDR bytes as they came off DDS.

    with BagWriter("talk.mcap") as bag:
        ch = bag.add_topic("/rsatalker/alice/audio", "rsatalker_ros/msg/AudioFrame", [qos_dict("best_effort")])
        bag.write(ch, cdr_bytes, log_time_ns, publish_time_ns)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml
from mcap.writer import CompressionType, Writer

from rsatalker_ros.bag.msgdef import message_definition

#: rosbag2's spelling of an infinite QoS duration
INFINITE = {"sec": 9223372036, "nsec": 854775807}
ROSBAG2_VERSION = 9


def qos_dict(reliability: str = "reliable", durability: str = "volatile", history: str = "keep_last",
             depth: int = 10) -> dict:
    """One offered QoS profile as rosbag2 (bag version 9) writes it: policies as lower-case words."""
    for value, allowed in ((reliability, ("reliable", "best_effort")), (durability, ("volatile", "transient_local")),
                           (history, ("keep_last", "keep_all"))):
        if value not in allowed:
            raise ValueError(f"QoS policy {value!r}: expected one of {allowed}")
    return {"history": history, "depth": int(depth), "reliability": reliability, "durability": durability,
            "deadline": dict(INFINITE), "lifespan": dict(INFINITE), "liveliness": "automatic",
            "liveliness_lease_duration": dict(INFINITE), "avoid_ros_namespace_conventions": False}


@dataclass
class _Topic:
    name: str
    type_name: str
    qos: list
    type_hash: str
    channel_id: int
    count: int = 0
    sequence: int = 0


@dataclass
class BagWriter:
    path: str
    chunk_size: int = 1 << 20           # bytes of messages per compressed chunk (rosbag2's mcap default is 768 kB)
    compression: str = "zstd"            # zstd | lz4 | none
    topics: dict = field(default_factory=dict, init=False)
    bytes_written: int = field(default=0, init=False)

    def __post_init__(self):
        kinds = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}
        if self.compression not in kinds:
            raise ValueError(f"compression {self.compression!r}: expected one of {sorted(kinds)}")
        self._file = open(self.path, "wb")
        self._mcap = Writer(self._file, chunk_size=self.chunk_size, compression=kinds[self.compression])
        from importlib.metadata import version
        self._mcap.start(profile="ros2", library=f"rsatalker_ros; mcap {version('mcap')}")
        self._schemas: dict[str, int] = {}
        self._first_ns: int | None = None
        self._last_ns = 0
        self._closed = False

    def add_topic(self, topic: str, type_name: str, qos: list[dict], type_hash: str = "",
                  definition: str | None = None) -> int:
        """Register a topic (once); returns its channel id. ``definition``: the ros2msg text (default: built from
        the installed .msg files)."""
        if topic in self.topics:
            raise ValueError(f"topic {topic} is already in the bag")
        if type_name not in self._schemas:
            text = definition if definition is not None else message_definition(type_name)
            self._schemas[type_name] = self._mcap.register_schema(type_name, "ros2msg", text.encode())
        meta = {"offered_qos_profiles": yaml.safe_dump(qos, sort_keys=False).strip(), "topic_type_hash": type_hash}
        cid = self._mcap.register_channel(topic, "cdr", self._schemas[type_name], meta)
        self.topics[topic] = _Topic(topic, type_name, qos, type_hash, cid)
        return cid

    def write(self, topic: str, data: bytes, log_time_ns: int, publish_time_ns: int | None = None) -> None:
        t = self.topics[topic]
        self._mcap.add_message(t.channel_id, log_time=int(log_time_ns), data=data, sequence=t.sequence,
                               publish_time=int(publish_time_ns if publish_time_ns is not None else log_time_ns))
        t.sequence += 1
        t.count += 1
        self.bytes_written += len(data)
        self._first_ns = log_time_ns if self._first_ns is None else min(self._first_ns, log_time_ns)
        self._last_ns = max(self._last_ns, log_time_ns)

    @property
    def message_count(self) -> int:
        return sum(t.count for t in self.topics.values())

    def metadata(self) -> dict:
        """rosbag2_bagfile_information, as rosbag2 writes it into metadata.yaml and the ``rosbag2`` record."""
        start = self._first_ns or 0
        duration = max(0, self._last_ns - start)
        name = str(self.path).rsplit("/", 1)[-1]
        return {
            "version": ROSBAG2_VERSION, "storage_identifier": "mcap", "relative_file_paths": [name],
            "duration": {"nanoseconds": duration}, "starting_time": {"nanoseconds_since_epoch": start},
            "message_count": self.message_count,
            "topics_with_message_count": [
                {"topic_metadata": {"name": t.name, "type": t.type_name, "serialization_format": "cdr",
                                    "offered_qos_profiles": t.qos, "type_description_hash": t.type_hash},
                 "message_count": t.count} for t in self.topics.values()],
            "compression_format": "", "compression_mode": "",
            "files": [{"path": name, "starting_time": {"nanoseconds_since_epoch": start},
                       "duration": {"nanoseconds": duration}, "message_count": self.message_count}],
            "custom_data": None, "ros_distro": "rsatalker_ros"}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._mcap.add_metadata("rosbag2", {"serialized_metadata": yaml.safe_dump(self.metadata(), sort_keys=False)})
        self._mcap.finish()
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
