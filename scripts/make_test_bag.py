"""Record the small conversation bag the tests replay (test/data/conversation.mcap) from the live graph.

    source scripts/env.sh && python scripts/make_test_bag.py --seconds 5

Starts the graph on the bundled demo conversation (mother-son) (renderers at 64 px: images are not recorded), waits until
every node is up, starts rsatalker-record on the voices, the conversation state, is_speaking and the motion, then
lets the audio play; the recorder stops --seconds after its first message.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOPICS = ["/rsatalker/*/audio", "/rsatalker/*/audio_info", "/rsatalker/conversation", "/humans/voices/*/is_speaking",
          "/rsatalker/*/motion"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--out", default=str(ROOT / "test" / "data" / "conversation.mcap"))
    args = ap.parse_args()
    import rclpy

    from rsatalker_ros.cli.bringup import Graph
    from rsatalker_ros.ros import graph
    from rsatalker_ros.ros.dds import local_dds_defaults
    from rsatalker_ros.ros.probe import GraphProbe
    local_dds_defaults()
    out = Path(args.out)
    out.unlink(missing_ok=True)
    # the demo conversation is a mother and her son
    specs = graph.describe(source="wav", kinship="blood", hierarchy="unequal", senior="alice", label="mother-son",
                           overrides={"renderer": {"width": 64, "height": 64},
                                                     "motion": {"marker_rate_hz": 0.0},
                                                     # motion x 2 + conversation, and the recorder
                                                     "audio_capture": {"wait_for_subscribers": 4}})
    rclpy.init()
    probe = GraphProbe(["alice", "bob"], extra=())
    with tempfile.TemporaryDirectory() as tmp:
        g = Graph(specs, log_dir=tmp)
        g.start(skip=[g.audio_group()])
        rec = None
        try:
            if not probe.spin_for(180, probe.graph_ready):
                sys.exit(f"the graph did not come up; logs: {tmp}")
            rec = subprocess.Popen([sys.executable, "-m", "rsatalker_ros.cli.record", "-o", str(out), "--quiet",
                                    "--duration", str(args.seconds), *TOPICS])
            # audio_capture starts the voices once the recorder has subscribed to them too
            g.start_group(g.audio_group())
            rec.wait(args.seconds + 120)
        finally:
            if rec and rec.poll() is None:
                rec.terminate()
            g.stop()
            probe.destroy_node()
            rclpy.try_shutdown()
    print(f"{out}: {out.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
