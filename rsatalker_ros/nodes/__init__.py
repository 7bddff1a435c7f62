"""The rclpy nodes (thin: parameters in, topics out; the core library does the work).

    audio_capture   microphone (PortAudio) or wav files -> /rsatalker/<id>/audio        (lifecycle node)
    conversation    everyone's audio -> /rsatalker/conversation, /humans/voices/<id>/is_speaking
    motion          own + partner audio + conversation -> SocialMotion, FaceMesh, marker, head pose (one per id)
    renderer        FaceMesh or SocialMotion -> image_raw, camera_info, compressed, stereo (one per id)
    container       several of them in one process (MultiThreadedExecutor)

Each module has a ``main()`` (``python -m rsatalker_ros.nodes.<name> --ros-args ...`` or ``ros2 run``).
"""
