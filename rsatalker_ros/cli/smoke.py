"""Smoke run of the ROS 2 side: two processes exchange every rsatalker_ros message over DDS and report what arrived.

    rsatalker-smoke [--seconds 3]

The talker process waits until the listener's three subscriptions have matched (DDS discovery; at most
``--discovery-timeout`` seconds), then publishes 20 ms AudioFrames (a spoken-vowel-like test signal), a
ConversationState and a SocialMotion stream for ``--seconds``; the listener process decodes them with
rsatalker_ros.ros.convert, stops once the stream has gone quiet, and prints counts and values.
"""

import argparse
import subprocess
import sys
import time


QUIET_S = 1.0        # the listener stops this long after the last message [s]


def talker(seconds: float, discovery_timeout: float) -> None:
    import numpy as np
    import rclpy
    from rsatalker_ros.motion.layout import ARKIT_LAYOUT
    from rsatalker_ros.msg import AudioFrame, ConversationState, SocialMotion
    from rsatalker_ros.ros.convert import audio_to_msg, motion_to_flame_params, ns_to_stamp, relation_to_msg
    from rsatalker_ros.social.relation import Relation

    rclpy.init()
    node = rclpy.create_node("smoke_talker")
    pub_audio = node.create_publisher(AudioFrame, "rsatalker/alice/audio", 10)
    pub_state = node.create_publisher(ConversationState, "rsatalker/conversation", 10)
    pub_motion = node.create_publisher(SocialMotion, "rsatalker/alice/motion", 10)
    relation = Relation.parse("blood", "unequal", senior="alice", label="mother-daughter")
    pubs = (pub_audio, pub_state, pub_motion)
    waited = time.monotonic()
    while not all(p.get_subscription_count() for p in pubs):   # messages sent before matching are lost (volatile)
        if time.monotonic() - waited > discovery_timeout:
            missing = [p.topic_name for p in pubs if not p.get_subscription_count()]
            print(f"smoke talker: no subscriber matched {missing} within {discovery_timeout:.0f} s", file=sys.stderr)
            break
        time.sleep(0.05)
    t = np.arange(320) / 16000.0
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        now_ns = node.get_clock().now().nanoseconds
        tone = 0.3 * np.sin(2 * np.pi * 220 * (t + i * 0.02)) * (1 + np.sin(2 * np.pi * 3 * i * 0.02)) / 2
        pub_audio.publish(audio_to_msg(tone, 16000, "alice", now_ns))
        if i % 2 == 0:
            motion = np.zeros(ARKIT_LAYOUT.dim, np.float32)
            motion[ARKIT_LAYOUT.jaw.start] = 0.1 * abs(np.sin(i * 0.1))
            msg = SocialMotion(participant_id="alice", role=SocialMotion.ROLE_SPEAKING,
                               params=motion_to_flame_params(motion, ARKIT_LAYOUT),
                               relation=relation_to_msg(relation), turn_index=1)
            ns_to_stamp(now_ns, msg.header.stamp)
            pub_motion.publish(msg)
            state = ConversationState(conversation_id="smoke", turn_index=1, participant_ids=["alice", "bob"],
                                      active_speaker="alice", activity=ConversationState.ACTIVITY_SINGLE,
                                      speaking_probability=[0.9, 0.1], relation=relation_to_msg(relation))
            ns_to_stamp(now_ns, state.header.stamp)
            pub_state.publish(state)
        i += 1
        time.sleep(0.02)
    node.destroy_node()
    rclpy.try_shutdown()


def listener(deadline_s: float) -> None:
    import numpy as np
    import rclpy
    from rsatalker_ros.msg import AudioFrame, ConversationState, SocialMotion
    from rsatalker_ros.ros.convert import audio_from_msg, flame_params_to_motion, relation_from_msg

    rclpy.init()
    node = rclpy.create_node("smoke_listener")
    got = {"audio": [], "state": [], "motion": []}
    last = [None]       # monotonic time of the last message

    def keep(key, value):
        got[key].append(value)
        last[0] = time.monotonic()

    node.create_subscription(AudioFrame, "rsatalker/alice/audio", lambda m: keep("audio", audio_from_msg(m)), 10)
    node.create_subscription(ConversationState, "rsatalker/conversation", lambda m: keep("state", m), 10)
    node.create_subscription(SocialMotion, "rsatalker/alice/motion",
                             lambda m: keep("motion", flame_params_to_motion(m.params)[0]), 10)
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        rclpy.spin_once(node, timeout_sec=0.05)
        if last[0] is not None and time.monotonic() - last[0] > QUIET_S:
            break
    n_audio = sum(a.shape[0] for a in got["audio"])
    print(f"audio: {len(got['audio'])} frames, {n_audio / 16000:.2f} s, rms {np.sqrt(np.mean(np.concatenate(got['audio']) ** 2)) if got['audio'] else 0:.3f}")
    if got["state"]:
        s = got["state"][-1]
        print(f"conversation: {len(got['state'])} states, speaker {s.active_speaker!r}, relation {relation_from_msg(s.relation)}")
    print(f"motion: {len(got['motion'])} frames, max jaw {max((m[52] for m in got['motion']), default=0):.3f} rad")
    ok = got["audio"] and got["state"] and got["motion"]
    print("SMOKE OK" if ok else "SMOKE FAILED: some topics delivered nothing")
    node.destroy_node()
    rclpy.try_shutdown()
    sys.exit(0 if ok else 1)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="how long the talker publishes [s]")
    ap.add_argument("--discovery-timeout", type=float, default=20.0,
                    help="how long the talker waits for the listener's subscriptions to match [s]")
    ap.add_argument("--role", choices=["talker", "listener"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    from rsatalker_ros.ros.dds import local_dds_defaults
    local_dds_defaults()
    if args.role == "talker":
        return talker(args.seconds, args.discovery_timeout)
    if args.role == "listener":
        return listener(args.seconds)       # here --seconds is the listener's overall deadline
    cmd = [sys.executable, "-m", "rsatalker_ros.cli.smoke", "--seconds"]
    deadline = args.discovery_timeout + args.seconds + QUIET_S + 5.0
    lis = subprocess.Popen(cmd + [str(deadline), "--role", "listener"])
    tal = subprocess.Popen(cmd + [str(args.seconds), "--discovery-timeout", str(args.discovery_timeout),
                                  "--role", "talker"])
    tal.wait()
    sys.exit(lis.wait())


if __name__ == "__main__":
    main()
