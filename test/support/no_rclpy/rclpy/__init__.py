raise ImportError("rclpy is blocked in this test: the core library must not import it")
