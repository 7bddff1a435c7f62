"""The rclpy nodes: thin lifecycle adapters (rsatalker_ros.ros.lifecycle_adapter.StageNode) around the ROS-free
stages in rsatalker_ros.stages, whose config dataclasses define every parameter.

    audio_capture   microphone (PortAudio) or wav files -> /rsatalker/<id>/audio
    conversation    everyone's audio -> /rsatalker/conversation, /humans/voices/<id>/is_speaking
    motion          own + partner audio + conversation -> SocialMotion, FaceMesh, marker, head pose (one per id)
    renderer        FaceMesh or SocialMotion -> image_raw, camera_info, compressed, stereo (one per id)
    container       several of them in one process (MultiThreadedExecutor)

All are lifecycle nodes that configure and activate themselves unless ``autostart`` is false.
Each module has a ``main()`` (``python -m rsatalker_ros.nodes.<name> --ros-args ...`` or ``ros2 run``).
"""

import os as _os

# Each node process does its small numpy products on one thread: OpenBLAS would otherwise spread a [1, 52] x
# [52, 13614] skinning product over every core and busy-wait (1.9 ms instead of 68 us, measured), taking the cores the
# other nodes need. OpenBLAS reads this when numpy loads, so it is set here, before any node module imports numpy;
# a value set in the environment wins.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

