"""The rclpy side: the lifecycle adapter every node is (lifecycle_adapter), running nodes and shutting them down
cleanly (spin), message conversion (convert), QoS profiles (qos), /tf_static (tf), the graph probe (probe); plus the
names and the graph description that the launch files and rsatalker-bringup share, which need no rclpy (topics,
graph, dds). What the nodes do lives ROS-free in rsatalker_ros.stages."""
