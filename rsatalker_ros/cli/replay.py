"""rsatalker-replay: play an MCAP bag back onto the graph with its original timing (or --rate), so a recorded
conversation can be re-rendered live with another relationship or avatar.

    rsatalker-replay talk.mcap                                   # every topic in the bag
    rsatalker-replay talk.mcap --topics '/rsatalker/*/audio'     # only the voices: motion + renderer redo the rest
    rsatalker-replay talk.mcap --rate 0.5 --loop

Header stamps are moved so the first message is stamped "now" (--keep-stamps publishes them as recorded): the
renderer judges frames by their age and displays play audio against images by stamp, so replayed data must look
live. Every message is decoded with the installed type before it goes out (a bag is untrusted); a topic whose type
is not installed or whose recorded definition differs from the installed one is refused with the reason.
"""

from __future__ import annotations

import argparse
import sys
import time

from rsatalker_ros.bag.msgdef import message_definition, normalized
from rsatalker_ros.bag.playback import Schedule
from rsatalker_ros.bag.reader import BagError, BagReader
from rsatalker_ros.bag.select import choose


def check_topic(info, message_class) -> str:
    """'' when the bag's topic can be published with the installed type, else why not."""
    try:
        message_class(info.type_name)
    except ValueError as err:
        return str(err)
    try:
        installed = message_definition(info.type_name)
    except (FileNotFoundError, ValueError):
        return ""            # no .msg files to compare with (e.g. a stripped install): decoding still checks it
    if normalized(installed) != normalized(info.definition):
        return (f"its recorded definition of {info.type_name} differs from the installed one (the bag was "
                "recorded with another version of the message); use --ignore-definitions to try anyway")
    return ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bag", help="the .mcap file")
    ap.add_argument("--topics", nargs="+", default=["*"], help="topic names or shell patterns (default: all)")
    ap.add_argument("--exclude", nargs="*", default=[], help="topic patterns to leave out")
    ap.add_argument("--rate", type=float, default=1.0, help="playback speed (1.0 = original timing)")
    ap.add_argument("--loop", action="store_true", help="play again and again (stamps keep moving forward)")
    ap.add_argument("--loop-gap", type=float, default=0.5, help="pause between loops [s]")
    ap.add_argument("--keep-stamps", action="store_true", help="publish header stamps as recorded (the nodes refuse "
                    "stamps older than their max_age_s parameter, 30 s by default: set it to 0 for old recordings)")
    ap.add_argument("--wait-for-subscribers", type=int, default=0, metavar="N",
                    help="start once every replayed topic has N subscribers (0: start at once)")
    ap.add_argument("--ignore-definitions", action="store_true",
                    help="replay topics whose recorded definition differs from the installed one")
    ap.add_argument("--quiet", action="store_true", help="no progress line")
    args = ap.parse_args(argv)
    if not args.rate > 0:
        ap.error(f"--rate is {args.rate}; expected > 0")
    if args.loop_gap < 0 or args.wait_for_subscribers < 0:
        ap.error("--loop-gap and --wait-for-subscribers must be >= 0")
    try:
        bag = BagReader(args.bag)
        infos = {t.name: t for t in bag.topics()}
    except BagError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    from rsatalker_ros.ros.dds import local_dds_defaults
    local_dds_defaults()
    import rclpy
    from rclpy.serialization import deserialize_message
    from tqdm import tqdm

    from rsatalker_ros.nodes.raw_topics import message_class, qos_from_dict, restamp
    chosen = choose(list(infos), args.topics, args.exclude)
    if not chosen:
        print(f"error: no topic of {args.bag} matches {args.topics} (it has {sorted(infos)})", file=sys.stderr)
        return 2
    rclpy.init(args=["--ros-args", "--disable-rosout-logs"])
    node = rclpy.create_node("rsatalker_replay")
    pubs, classes, refused = {}, {}, {}
    for name in chosen:
        info = infos[name]
        why = check_topic(info, message_class)
        if why and not (args.ignore_definitions and "definition" in why):
            refused[name] = why
            print(f"not replaying {name}: {why}", file=sys.stderr)
            continue
        classes[name] = message_class(info.type_name)
        pubs[name] = node.create_publisher(classes[name], name, qos_from_dict(info.qos[0] if info.qos else None))
    if not pubs:
        print("error: nothing to replay", file=sys.stderr)
        return 2
    try:
        if args.wait_for_subscribers:
            print(f"waiting for {args.wait_for_subscribers} subscriber(s) on each of {sorted(pubs)}", file=sys.stderr,
                  flush=True)
        while args.wait_for_subscribers and not all(p.get_subscription_count() >= args.wait_for_subscribers
                                                    for p in pubs.values()):
            rclpy.spin_once(node, timeout_sec=0.1)
        # the clock starts at the first replayed message (a bag may hold a quiet lead-in on other topics)
        first_ns = next(bag.messages(list(pubs)))[1]
        sched = Schedule(first_ns, bag.end_ns - first_ns, time.time_ns(), args.rate, int(args.loop_gap * 1e9))
        sent, bad, loop = 0, 0, 0
        bar = tqdm(total=round(sched.bag_duration_ns / 1e9, 1), unit=" s", desc=f"replaying {args.bag}",
                   disable=args.quiet,
                   file=sys.stderr, dynamic_ncols=True, bar_format="{desc}: {n:.1f}/{total:.1f} s |{bar}| {postfix}")
        while True:
            shift = sched.stamp_shift_ns(loop)
            for info, log_ns, _, data in bag.messages(list(pubs)):
                wait = (sched.due_ns(log_ns, loop) - time.time_ns()) / 1e9
                if wait > 0:
                    time.sleep(wait)        # pacing: the bag's own timing
                try:
                    msg = deserialize_message(data, classes[info.name])
                except Exception as err:  # noqa: BLE001 - a corrupt message: count it, say so, go on
                    bad += 1
                    if bad <= 5:
                        print(f"skipped a message on {info.name} that does not decode as {info.type_name}: {err}",
                              file=sys.stderr)
                    continue
                if not args.keep_stamps:
                    restamp(msg, shift)
                pubs[info.name].publish(msg)
                sent += 1
                bar.n = round((log_ns - first_ns) / 1e9, 1)
                bar.set_postfix_str(f"loop {loop + 1}, {sent} msgs" + (f", {bad} bad" if bad else ""),
                                    refresh=sent % 25 == 0)
            if not args.loop:
                break
            loop += 1
        bar.close()
        print(f"replayed {sent} messages on {len(pubs)} topics" + (f"; skipped {bad} undecodable" if bad else "") +
              (f"; refused {len(refused)} topics" if refused else ""), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
