# Source me (bash): puts rsatalker_ros's venv, its built interfaces and safe DDS defaults into this shell.
#   source scripts/env.sh
_rsat_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_rsat_venv=${RSATALKER_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/rsatalker_ros/venv}
if [ ! -x "$_rsat_venv/bin/python" ]; then
  echo "no venv at $_rsat_venv: run scripts/bootstrap.sh first" >&2; return 1
fi
# shellcheck disable=SC1091
source "$_rsat_venv/bin/activate"
if [ -z "${ROS_DISTRO:-}" ]; then
  export AMENT_PREFIX_PATH="$_rsat_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
fi
if [ -f "$_rsat_root/install/setup.bash" ]; then
  # shellcheck disable=SC1091
  source "$_rsat_root/install/setup.bash"
fi
# Test-only interfaces (scripts/build_test_interfaces.sh) and, where ../shared/third_party exists, the pure-Python
# ROS 2 launch packages kept there (launch, launch_ros, launch_testing, ...).
if [ -z "${ROS_DISTRO:-}" ] && [ -f "$_rsat_root/build/test_interfaces/install/local_setup.bash" ]; then
  # shellcheck disable=SC1091
  source "$_rsat_root/build/test_interfaces/install/local_setup.bash"
fi
# RSATALKER_THIRD_PARTY names that folder where it is elsewhere.
_rsat_tp=${RSATALKER_THIRD_PARTY:-$_rsat_root/../shared/third_party}
if [ -z "${ROS_DISTRO:-}" ] && [ -d "$_rsat_tp/ros2_launch" ]; then
  for _rsat_pkg in "$_rsat_tp"/ros2_launch/*/ "$_rsat_tp"/ros2_launch_ros/*/; do
    _rsat_pkg=$(cd "$_rsat_pkg" && pwd)
    case ":${PYTHONPATH:-}:" in *":$_rsat_pkg:"*) ;; *) export PYTHONPATH="$_rsat_pkg${PYTHONPATH:+:$PYTHONPATH}" ;; esac
  done
  unset _rsat_pkg
fi
unset _rsat_tp
# The source checkout comes first, so edits take effect without a rebuild (rsatalker_ros.msg still resolves to the
# generated package in install/, see rsatalker_ros/__init__.py).
export PYTHONPATH="$_rsat_root${PYTHONPATH:+:$PYTHONPATH}"
# DDS stays on this machine unless told otherwise (set SUBNET on a real robot network).
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
# On this machine only: Fast DDS's shared memory sized for 512 x 512 images (see config/fastdds_localhost.xml).
if [ "$ROS_AUTOMATIC_DISCOVERY_RANGE" = LOCALHOST ] && [ -z "${FASTDDS_DEFAULT_PROFILES_FILE:-}" ] \
    && [ "${RMW_IMPLEMENTATION#rmw_fastrtps}" != "$RMW_IMPLEMENTATION" ]; then
  export FASTDDS_DEFAULT_PROFILES_FILE="$_rsat_root/config/fastdds_localhost.xml"
fi
unset _rsat_root _rsat_venv
