#!/usr/bin/env bash
# Interface packages the tests need that the ROS 2 PyPI wheels lack, built with colcon into their own prefix
# (build/test_interfaces/install), apart from the rsatalker_ros install:
#   composition_interfaces  (from ../shared/third_party, or $RSATALKER_THIRD_PARTY: what launch_ros imports), only
#                           when that folder exists;
#   tf2_msgs                (TFMessage from its interface definition, test/support/ros_interfaces/tf2_msgs).
# scripts/env.sh sources the prefix and puts ../shared/third_party's launch packages on PYTHONPATH.
# Usage: scripts/build_test_interfaces.sh [VENV]   (called by scripts/bootstrap.sh; skipped on a real ROS 2 distro)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${1:-${RSATALKER_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/rsatalker_ros/venv}}
SHARED=${RSATALKER_THIRD_PARTY:-$ROOT/../shared/third_party}
OUT=$ROOT/build/test_interfaces
mkdir -p "$OUT"
# (test/support/ros_interfaces holds a COLCON_IGNORE, so a workspace build never picks its tf2_msgs up: copied)
rm -rf "$OUT/src" && mkdir -p "$OUT/src" && cp -r "$ROOT/test/support/ros_interfaces/tf2_msgs" "$OUT/src/"
paths=("$OUT/src")
[ -d "$SHARED/ros2_rcl_interfaces/composition_interfaces" ] && paths+=("$SHARED/ros2_rcl_interfaces/composition_interfaces")
sum=$( (for p in "${paths[@]}"; do find "$p" -type f \( -name '*.msg' -o -name '*.srv' -o -name '*.txt' -o -name '*.xml' \) -print0 | sort -z | xargs -0 cat; done; echo "${paths[*]}") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$OUT/stamp.sha" 2>/dev/null)" = "$sum" ] && [ -f "$OUT/install/setup.bash" ]; then
  echo "test interfaces: up to date"; exit 0
fi
(
  export PATH=$VENV/bin:$PATH
  if [ -z "${ROS_DISTRO:-}" ]; then export CMAKE_PREFIX_PATH=$VENV AMENT_PREFIX_PATH=$VENV; fi
  cd "$OUT"
  "$VENV/bin/colcon" --log-base log build --base-paths "${paths[@]}" --build-base build --install-base install \
    --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF --event-handlers console_cohesion- \
    >colcon_build.txt 2>&1 || { cat colcon_build.txt >&2; exit 1; }
)
echo "$sum" > "$OUT/stamp.sha"
echo "test interfaces: built into $OUT/install"
