"""Pure logic behind the nodes, without ROS: turn taking, two-stream alignment, newest-frame mailbox, graph names."""

import threading

import numpy as np
import pytest

from rsatalker_ros.stages.frame_queue import FrameQueue
from rsatalker_ros.stages.stream_align import AlignConfig, PairAligner
from rsatalker_ros.stages.turn_taking import OVERLAP, SILENCE, SINGLE, TurnConfig, TurnTracker


def feed(tracker, script, dt=0.032):
    """script: list of (seconds, {pid: prob}); returns the states after each segment."""
    t, out = 0.0, []
    for seconds, probs in script:
        for _ in range(int(round(seconds / dt))):
            t += dt
            for pid, p in probs.items():
                tracker.update(pid, p, t)
        out.append(tracker.state(t))
    return out


def test_turns_count_speaker_changes_not_pauses():
    tr = TurnTracker(["alice", "bob"], TurnConfig(min_speech_s=0.1, hangover_s=0.3))
    s = feed(tr, [(0.5, {"alice": 0.0, "bob": 0.0}),
                  (1.0, {"alice": 0.9, "bob": 0.0}),     # alice opens turn 0
                  (0.15, {"alice": 0.1, "bob": 0.0}),    # a short pause inside her turn
                  (0.5, {"alice": 0.9, "bob": 0.0}),
                  (0.6, {"alice": 0.0, "bob": 0.0}),     # silence
                  (0.8, {"alice": 0.0, "bob": 0.95}),    # bob answers: turn 1
                  (0.5, {"alice": 0.9, "bob": 0.95}),    # overlap: bob keeps the turn
                  (0.6, {"alice": 0.9, "bob": 0.0}),     # bob stops: alice takes turn 2
                  ])
    assert (s[0].activity, s[0].active_speaker) == (SILENCE, "")
    assert (s[1].activity, s[1].active_speaker, s[1].turn_index) == (SINGLE, "alice", 0)
    assert (s[2].activity, s[2].active_speaker) == (SINGLE, "alice")
    assert s[4].activity == SILENCE and s[4].turn_index == 0
    assert (s[5].active_speaker, s[5].turn_index) == ("bob", 1)
    assert (s[6].activity, s[6].active_speaker, s[6].turn_index) == (OVERLAP, "bob", 1)
    assert (s[7].activity, s[7].active_speaker, s[7].turn_index) == (SINGLE, "alice", 2)


def test_short_blips_are_not_speech_and_silent_sources_expire():
    tr = TurnTracker(["a", "b"], TurnConfig(min_speech_s=0.1, hangover_s=0.3, stale_s=0.5))
    s = feed(tr, [(0.032, {"a": 1.0}), (0.5, {"a": 0.0})])
    assert s[0].activity == SILENCE and s[1].activity == SILENCE
    feed(tr, [(0.5, {"a": 1.0})])
    assert tr.state(0.6).active_speaker == "a"
    assert tr.state(1.5).activity == SILENCE          # a's audio stopped arriving 1 s ago


def test_turn_tracker_rejects_bad_input():
    tr = TurnTracker(["a", "b"])
    with pytest.raises(ValueError, match="unknown participant"):
        tr.update("c", 0.5, 0.0)
    with pytest.raises(ValueError, match="probability"):
        tr.update("a", float("nan"), 0.0)
    with pytest.raises(ValueError, match="distinct"):
        TurnTracker(["a", "a"])


def test_aligner_pairs_streams_by_stamp_and_fills_gaps():
    al = PairAligner(AlignConfig(sample_rate=16000))
    t0 = 5_000_000_000
    ns = lambda i: t0 + i * 1_000_000_000 // 16000  # noqa: E731
    al.push(0, np.ones(320), ns(0))
    assert al.pop()[0].shape == (0,)                       # the partner has not arrived yet
    al.push(1, 2 * np.ones(320), ns(0))
    own, par, start, _ = al.pop()
    assert start == 0 and own.shape == par.shape == (320,) and own[0] == 1 and par[0] == 2
    al.push(0, np.ones(320), ns(640))                      # own chunk 320..640 was lost: silence fills it
    al.push(1, 2 * np.ones(640), ns(320))
    own, par, start, _ = al.pop()
    assert start == 320 and own.shape == (640,) and np.all(own[:320] == 0) and np.all(own[320:] == 1)
    al.push(1, 3 * np.ones(320), ns(960))
    al.push(1, 3 * np.ones(320), ns(960))                  # a duplicate of samples the partner already sent
    assert al.dropped_samples == 320
    assert al.stamp_of(640) == ns(640)


def test_aligner_treats_a_silent_partner_as_absent_and_restarts_on_jumps():
    al = PairAligner(AlignConfig(sample_rate=16000, max_lag_s=0.1, max_gap_s=1.0))
    t0 = 10**9
    got = 0
    for k in range(20):                                    # 20 x 20 ms of own audio, no partner at all
        al.push(0, np.ones(320), t0 + k * 20_000_000)
        own, par, _, _ = al.pop()
        got += own.shape[0]
        assert np.all(par == 0)
    assert got >= 20 * 320 - 0.1 * 16000                   # at most max_lag behind, not stalled
    al.push(0, np.ones(320), t0 + 60 * 10**9)              # a minute later: a restarted source
    assert al.pop()[3] is True and al.t0_ns == t0 + 60 * 10**9
    assert al.restart_reason.startswith("own audio jumped 59.6")     # the warning says what happened
    al.push(1, np.ones(320), t0 + 60 * 10**9)
    al.push(0, np.ones(320), t0 + 5 * 10**8)               # a straggler from before the restart: dropped
    assert al.pop()[3] is False and al.t0_ns == t0 + 60 * 10**9
    for k in range(9):                                     # but a source that really went back (10 chunks in
        al.push(0, np.ones(320), t0 + k * 20_000_000)      # a row, the straggler included): restart
    assert al.pop()[3] is True and al.t0_ns == t0 + 8 * 20_000_000


def test_aligner_never_restarts_on_late_but_continuous_audio():
    """Issue #11: "motion stream restarted" under load with nothing injected. Both streams keep continuous stamps,
    but a starved sender delivers the partner's chunks in bursts up to 3.5 s late (more than max_gap_s) and the own
    stream with jitter: the clock goes on (the late partner audio counted, not replayed), nothing restarts."""
    al = PairAligner(AlignConfig(sample_rate=16000))
    rng = np.random.default_rng(7)
    t0, chunk_ns = 10**9, 20_000_000
    events, last = [], [0, 0]                            # (arrival [ns], stream, chunk index)
    for k in range(1500):                                # 30 s of audio per stream
        stall_end = (k // 250 + 1) * 250 * chunk_ns      # the partner's sender stalls for seconds now and then
        late = (int(rng.uniform(0, 80e6)),
                min(stall_end - k * chunk_ns, 3_500_000_000) if (k // 250) % 3 == 0 else int(rng.uniform(0, 40e6)))
        for stream in (0, 1):                            # each topic keeps its order (one writer)
            last[stream] = max(last[stream], k * chunk_ns + late[stream])
            events.append((last[stream], stream, k))
    own_in = np.zeros(1500 * 320, np.float32)
    own_out = []
    for _, stream, k in sorted(events):
        x = np.full(320, k + 1.0, np.float32)            # each chunk carries its index: order is checkable
        if stream == 0:
            own_in[k * 320:(k + 1) * 320] = x
        al.push(stream, x, t0 + k * chunk_ns)
        own, _, _, restarted = al.pop()
        assert not restarted, (k, getattr(al, "restart_reason", ""))
        own_out.append(own)
    assert al.t0_ns == t0
    got = np.concatenate(own_out)
    # the own stream, complete and in order up to where the clock is (jitter is absorbed, not silence-filled)
    assert np.array_equal(got, own_in[:got.shape[0]]) and got.shape[0] >= 1400 * 320
    assert al.late_samples > 0                           # some partner audio came after its time was past


def test_frame_queue_renders_fresh_frames_in_order_and_drops_stale_ones():
    q = FrameQueue(max_age_ns=100)
    q.put("a", 1000)
    q.put("b", 1040)                                   # two frames arrived together (a hiccup upstream)
    assert q.take(now_ns=1060, timeout=0) == ("a", 1000)   # both fresh: nothing lost
    assert q.take(now_ns=1070, timeout=0) == ("b", 1040)
    for i in range(3):                                 # the renderer fell behind: 1080 and 1120 are stale now
        q.put(f"f{i}", 1080 + 40 * i)
    assert q.take(now_ns=1250, timeout=0) == ("f2", 1160)
    assert q.stats.dropped_stale == 2
    assert q.put("old", 1100) is False and q.stats.dropped_out_of_order == 1
    assert q.take(now_ns=1300, timeout=0) is None
    q.put("lonely", 1200)                              # stale but nothing newer waits: still rendered
    assert q.take(now_ns=10**9, timeout=0) == ("lonely", 1200)
    assert q.stats.taken + q.stats.dropped == q.stats.received


def test_frame_queue_bounds_the_backlog_and_newest_only_mode():
    q = FrameQueue(max_age_ns=10**12, depth=3)
    for i in range(5):
        q.put(i, 40 * (i + 1))
    assert q.stats.dropped_overflow == 2
    assert [q.take(now_ns=0, timeout=0)[0] for _ in range(3)] == [2, 3, 4]
    newest = FrameQueue(max_age_ns=0)
    for i in range(5):
        newest.put(f"frame{i}", i * 40)
    assert newest.take(now_ns=0, timeout=0) == ("frame4", 160)
    assert newest.stats.dropped_stale == 4
    with pytest.raises(ValueError):
        FrameQueue(max_age_ns=-1)


def test_frame_queue_restarted_source_and_waiting_take():
    q = FrameQueue(max_age_ns=0)
    q.put("x", 10**10)
    q.put("y", 10**10 + 40)
    assert q.stats.dropped_stale == 1                    # newest only: "x" went stale when "y" arrived
    assert q.put("restarted", 160) is True              # far older = the source restarted, not out of order
    assert q.stats.dropped_overflow == 1                # the old stream's waiting frame is gone
    assert q.take(timeout=0) == ("restarted", 160)
    got = []
    th = threading.Thread(target=lambda: got.append(q.take(timeout=2.0)))
    th.start()
    q.put("late", 10**10)
    th.join()
    assert got == [("late", 10**10)]
