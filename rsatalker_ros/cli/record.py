"""rsatalker-record: record topics of the running graph into an MCAP bag, as rosbag2 does (ros2msg schemas, the
CDR bytes exactly as they came off DDS, offered QoS and type hashes per topic, the rosbag2 metadata record).

    rsatalker-record -o talk.mcap                              # every topic of the graph (participants from config/)
    rsatalker-record -o talk.mcap '/rsatalker/*/audio' /rsatalker/conversation --duration 10
    rsatalker-record -o all.mcap --all --exclude '*/image_raw' # everything in the graph but raw images

Topics that appear later are picked up as they appear (checked twice a second). Stops on Ctrl-C / SIGTERM or after
--duration and closes the file properly. Prints one progress line: time, messages, megabytes, topics.
The bag opens in Foxglove, plays with ``rsatalker-replay`` (or ``ros2 bag play`` on a ROS 2 install) and reads with
rosbags or mcap-ros2-support.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from rsatalker_ros.bag.select import graph_topics
from rsatalker_ros.bag.writer import BagWriter


class Recorder:
    """A node that subscribes raw to the chosen topics and writes every message into a BagWriter."""

    def __init__(self, node, bag: BagWriter, include: list[str], exclude: list[str], depth: int = 50):
        self.node, self.bag, self.include, self.exclude, self.depth = node, bag, include, exclude, depth
        self.subscriptions = {}
        self.failed: dict[str, str] = {}
        self.discover()
        node.create_timer(0.5, self.discover)

    def discover(self) -> None:
        from rsatalker_ros.nodes.raw_topics import (discover, message_class, qos_to_dict, subscription_qos,
                                                    type_hash)
        for topic, type_name, pubs in discover(self.node, self.include, self.exclude,
                                               set(self.subscriptions) | set(self.failed)):
            try:
                cls = message_class(type_name)
                self.bag.add_topic(topic, type_name, [qos_to_dict(p.qos_profile) for p in pubs], type_hash(pubs))
            except (ValueError, FileNotFoundError) as err:
                self.failed[topic] = str(err)
                self.node.get_logger().error(f"not recording {topic}: {err}")
                continue
            self.subscriptions[topic] = self.node.create_subscription(
                cls, topic, lambda data, info, t=topic: self.bag.write(t, data, info["received_timestamp"],
                                                                       info["source_timestamp"]),
                subscription_qos(pubs, self.depth), raw=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("topics", nargs="*", help="topic names or shell patterns (default: the graph's topics)")
    ap.add_argument("-o", "--output", default="", help="the .mcap file to write (default: rsatalker_<time>.mcap)")
    ap.add_argument("--all", action="store_true", help="every topic in the ROS graph")
    ap.add_argument("--participants", nargs="+", help="participant ids for the default topics (default: config/)")
    ap.add_argument("--exclude", nargs="*", default=[], help="topic patterns to leave out")
    ap.add_argument("--duration", type=float, default=0.0,
                    help="stop this long [s] after the first message; 0 = until Ctrl-C")
    ap.add_argument("--compression", choices=["zstd", "lz4", "none"], default="zstd", help="MCAP chunk compression")
    ap.add_argument("--quiet", action="store_true", help="no progress line")
    args = ap.parse_args(argv)
    if args.duration < 0:
        ap.error(f"--duration is {args.duration}; expected >= 0")
    if args.all:
        include = ["*"]
    elif args.topics:
        include = args.topics
    else:
        from rsatalker_ros.ros import graph
        pids = args.participants or [p["id"] for p in graph.load_graph_config()["participants"]]
        include = graph_topics(pids)
    out = args.output or time.strftime("rsatalker_%Y_%m_%d-%H_%M_%S.mcap")
    if not out.endswith(".mcap"):
        ap.error(f"--output {out!r}: expected a file name ending in .mcap")
    if os.path.exists(out):
        ap.error(f"{out} exists; choose another name (a recording never overwrites a file)")

    from rsatalker_ros.ros.dds import local_dds_defaults
    local_dds_defaults()
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from tqdm import tqdm
    rclpy.init(args=["--ros-args", "--disable-rosout-logs"])
    node = rclpy.create_node("rsatalker_record")
    bag = BagWriter(out, compression=args.compression)
    rec = Recorder(node, bag, include, args.exclude)
    bar = tqdm(desc=f"recording {out}", unit=" msgs", disable=args.quiet, dynamic_ncols=True, file=sys.stderr)
    first = []

    def progress():
        bar.update(bag.message_count - bar.n)
        bar.set_postfix_str(f"{bag.bytes_written / 1e6:.1f} MB, {len(rec.subscriptions)} topics")
        if bag.message_count and not first:
            first.append(time.monotonic())
        if args.duration and first and time.monotonic() - first[0] >= args.duration:
            raise SystemExit(0)

    def stop(*_):
        raise SystemExit(0)

    node.create_timer(0.5, progress)
    signal.signal(signal.SIGTERM, stop)          # a clean stop closes the file properly, like Ctrl-C
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, SystemExit, ExternalShutdownException):
        pass
    finally:
        bar.update(bag.message_count - bar.n)
        bar.close()
        bag.close()
        node.destroy_node()
        rclpy.try_shutdown()
    counts = ", ".join(f"{t.name} {t.count}" for t in bag.topics.values())
    print(f"wrote {out}: {bag.message_count} messages on {len(bag.topics)} topics ({counts})", flush=True)
    for topic, why in rec.failed.items():
        print(f"not recorded: {topic}: {why}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
