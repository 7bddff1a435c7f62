"""ROS-free stages: what each node does, as plain Python a unit test can drive, each with a dataclass config that
is the one source of its parameters' defaults, ranges and descriptions (params), and the health checks it reports
on /diagnostics (health). rsatalker_ros.ros.lifecycle_adapter wraps a stage in a lifecycle node."""
