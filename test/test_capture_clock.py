"""The capture clock stamps a device's audio by its sample count: a starved process that gets the device's chunks
late, in a burst, keeps exact stamps; only lost samples move the clock to the wall clock."""

from rsatalker_ros.audio.sources import CaptureClock

RATE = 16000
BLOCK = 320                       # 20 ms device blocks at 16 kHz
BLOCK_NS = 20_000_000
T0 = 5_000_000_000


def test_on_time_chunks_are_stamped_by_their_sample_count():
    clock = CaptureClock()
    stamps = [clock.stamp(BLOCK, T0 + (k + 1) * BLOCK_NS + 3_000_000 * (k % 3), BLOCK, RATE) for k in range(200)]
    assert stamps == [T0 + k * BLOCK_NS for k in range(200)]
    assert clock.reanchors == 0


def test_a_stalled_process_gets_a_burst_and_keeps_exact_stamps():
    clock = CaptureClock()
    stamps = [clock.stamp(BLOCK, T0 + (k + 1) * BLOCK_NS, BLOCK, RATE) for k in range(50)]
    stall_end = T0 + 50 * BLOCK_NS + 2_000_000_000           # no callback for 2 s, then 100 blocks at once
    stamps += [clock.stamp(BLOCK, stall_end + k * 10_000, BLOCK, RATE) for k in range(100)]
    stamps += [clock.stamp(BLOCK, T0 + (k + 1) * BLOCK_NS, BLOCK, RATE) for k in range(150, 300)]
    assert stamps == [T0 + k * BLOCK_NS for k in range(300)]
    assert clock.reanchors == 0


def test_samples_lost_silently_move_the_clock_to_the_wall_clock_once():
    clock = CaptureClock()
    stamps = [clock.stamp(BLOCK, T0 + (k + 1) * BLOCK_NS, BLOCK, RATE) for k in range(50)]
    # the device dropped 1 s of audio (blocks 50..99 never arrive); later blocks come on time
    stamps += [clock.stamp(BLOCK, T0 + (k + 1) * BLOCK_NS, BLOCK, RATE) for k in range(100, 200)]
    assert clock.reanchors == 1
    assert stamps[-1] == T0 + 199 * BLOCK_NS                   # on the wall clock again
    moved = [i for i in range(1, len(stamps)) if stamps[i] - stamps[i - 1] != BLOCK_NS]
    assert len(moved) == 1 and stamps[moved[0]] - stamps[moved[0] - 1] == 51 * BLOCK_NS
    assert moved[0] - 50 <= 0.5e9 / BLOCK_NS                  # within settle_s of the loss


def test_a_reported_overflow_moves_the_clock_at_once():
    clock = CaptureClock()
    for k in range(10):
        clock.stamp(BLOCK, T0 + (k + 1) * BLOCK_NS, BLOCK, RATE)
    stamp = clock.stamp(BLOCK, T0 + 31 * BLOCK_NS, BLOCK, RATE, lost=True)   # 20 blocks lost, overflow reported
    assert stamp == T0 + 30 * BLOCK_NS and clock.reanchors == 1
    assert clock.stamp(BLOCK, T0 + 32 * BLOCK_NS, BLOCK, RATE) == T0 + 31 * BLOCK_NS


def test_a_restarted_stream_is_anchored_anew_without_counting_lost_audio():
    clock = CaptureClock()
    for k in range(10):
        clock.stamp(BLOCK, T0 + (k + 1) * BLOCK_NS, BLOCK, RATE)
    clock.restart()                                          # deactivated for 3 s, then activated again
    t1 = T0 + 3_000_000_000
    stamps = [clock.stamp(BLOCK, t1 + (k + 1) * BLOCK_NS, BLOCK, RATE) for k in range(5)]
    assert stamps == [t1 + k * BLOCK_NS for k in range(5)] and clock.reanchors == 0
