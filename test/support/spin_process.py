"""The end of a test helper process: spin one node until Ctrl-C / SIGINT or a shutdown, then clean up."""

import rclpy


def spin_until_shutdown(node) -> None:
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
