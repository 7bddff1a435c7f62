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
