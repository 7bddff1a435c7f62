"""MCAP bags written and read as rosbag2 does (ros2msg schemas, CDR payloads), without rclpy: message definitions,
the writer, a bounded reader, topic selection and playback timing. The rclpy side is ``cli/record.py`` and
``cli/replay.py``."""
