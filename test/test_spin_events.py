"""A one-node process spins rclpy's EventsExecutor (ros.spin's default): it takes audio from its subscriptions,
publishes from its timer, answers its lifecycle services (a deactivate / activate cycle too), and SIGINT / SIGTERM end it with exit code 0.
(rclpy 9.1.2's EventsExecutor.spin() never returned on a signal: ros.spin runs it in slices.)"""

import signal
import sys
import time

import pytest

from support.processes import node_process
from support.ros_harness import Harness, demo_audio

pytestmark = pytest.mark.ros


def test_executor_choice_is_checked():
    from rsatalker_ros.ros.spin import make_executor
    with pytest.raises(ValueError, match="expected 'single' or 'events'"):
        make_executor(1, False, kind="eventz")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_events_executor_node_process_hears_audio_and_ends_on_a_signal(sig):
    import rclpy
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    from rsatalker_ros.msg import ConversationState
    from rsatalker_ros.ros import qos
    cmd = [sys.executable, "-m", "rsatalker_ros.nodes.conversation", "--ros-args", "-r", "__node:=conversation_ev",
           "-p", "participants:=[alice, bob]", "-p", "vad_backend:=energy", "-p", "max_age_s:=600.0"]
    rclpy.init()
    with node_process(cmd) as (proc, lines):
        h = Harness()
        try:
            states = h.collect(ConversationState, "/rsatalker/conversation", qos.STATE)
            get_state = h.tester.create_client(GetState, "/conversation_ev/get_state")
            assert h.spin_until(lambda: states, 120), "".join(lines)[-3000:]      # the timer publishes
            future = get_state.call_async(GetState.Request())                     # a service answers
            assert h.spin_until(future.done, 30) and future.result().current_state.label == "active"
            a, b, _ = demo_audio(3.0)         # alice talks from 0.4 s on, bob is silent
            t0 = time.time_ns() - 60 * 10**9
            for k in range(0, a.size, 1600):  # the subscriptions take the audio: alice becomes the speaker
                h.publish_audio("alice", a[k:k + 1600], t0 + k * 62_500)
                h.publish_audio("bob", b[k:k + 1600], t0 + k * 62_500)
                h.spin(0.02)
            assert h.spin_until(lambda: states[-1].active_speaker == "alice", 30), "".join(lines)[-3000:]
            # deactivate destroys the subscriptions, publishers and timer, activate makes new ones: the executor
            # lets go of the old ones and serves the new ones
            change = h.tester.create_client(ChangeState, "/conversation_ev/change_state")
            for transition in (Transition.TRANSITION_DEACTIVATE, Transition.TRANSITION_ACTIVATE):
                future = change.call_async(ChangeState.Request(transition=Transition(id=transition)))
                assert h.spin_until(future.done, 30) and future.result().success, "".join(lines)[-3000:]
            n = len(states)
            assert h.spin_until(lambda: len(states) > n + 2, 30), "".join(lines)[-3000:]
        finally:
            h.close()
            rclpy.try_shutdown()
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 0, "".join(lines)[-3000:]
    assert "Traceback" not in "".join(lines)
