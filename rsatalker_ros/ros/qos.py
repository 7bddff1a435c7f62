"""QoS profiles of the rsatalker_ros graph (REP-2003: drivers publish sensor data reliable, subscribers choose
best effort; reliable state and images)."""

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data)

#: microphone audio (AudioFrame) as audio_capture publishes it: reliable, keep last 5 (REP-2003: a driver publishes
#: reliable so that both reliable and best-effort subscribers match; keep-last never blocks the capture thread)
AUDIO = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE,
                   durability=DurabilityPolicy.VOLATILE)
#: what subscribers of sensor streams use (REP-2003: sensor-data QoS, best effort: a late chunk is worth less than
#: the next one)
SENSOR_IN = qos_profile_sensor_data
#: the motion node's audio: best effort like SENSOR_IN, but 0.5 s deep (25 chunks of 20 ms) instead of 5 chunks. A
#: node starved of CPU for a moment (a respawned neighbour importing torch, a collection) then gets that audio late
#: but continuous and catches up, instead of losing it (silence in its place, and more than stream_align's
#: max_gap_s lost restarts the motion stream). Not deeper: audio older than that makes frames the renderer drops
#: as stale anyway, and a node that stays slower than real time would only lag further behind.
AUDIO_IN = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=25, reliability=ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)
#: conversation state, motion, is_speaking: reliable, keep last 10
STATE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
#: meshes and images: reliable, keep last 4 (the writer's resend buffer: 160 ms at 25 Hz, so a reader whose
#: process is briefly starved of CPU still gets every frame; each reader's own depth decides its backlog)
FRAMES = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=4, reliability=ReliabilityPolicy.RELIABLE)
#: subscribers that decide themselves which frames to drop (the renderer's FrameQueue): deep enough that DDS never
#: discards a frame before the node has seen and counted it
LATEST = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=4, reliability=ReliabilityPolicy.RELIABLE)
#: recorders and measurement probes: every frame, even when the recording process falls behind for a second
RECORD = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE)
#: latched topics (topology, relation, audio info): reliable, transient local, keep last 1
LATCHED = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
