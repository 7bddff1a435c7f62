"""/tf_static from a node (tf2_ros StaticTransformBroadcaster's behaviour without tf2_ros): every transform this
node has set, re-sent together on each change on a transient-local topic, so late subscribers get them all.
Frames and their conventions: rsatalker_ros.stages.frames. Without tf2_msgs (a machine without it) it does nothing.
"""

from __future__ import annotations

import threading

from geometry_msgs.msg import TransformStamped
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from rsatalker_ros.ros.convert import ns_to_stamp

#: tf2_ros's static broadcaster profile: reliable, transient local, keep last 1
TF_STATIC_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)
# A listener hears one latched message from every broadcaster at once: with depth 1 all but the last are lost when
# they arrive together (tf2_ros's static listener uses 100 for the same reason).
TF_STATIC_LISTENER_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                                    reliability=ReliabilityPolicy.RELIABLE,
                                    durability=DurabilityPolicy.TRANSIENT_LOCAL)


def transform_msg(parent: str, child: str, xyz, quat, stamp_ns: int) -> TransformStamped:
    """xyz [3] metres, quat [4] (x, y, z, w)."""
    t = TransformStamped()
    ns_to_stamp(stamp_ns, t.header.stamp)
    t.header.frame_id, t.child_frame_id = parent, child
    t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (float(v) for v in xyz)
    (t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z,
     t.transform.rotation.w) = (float(v) for v in quat)
    return t


class StaticFrames:
    def __init__(self, node, publisher_factory):
        """``publisher_factory(msg_type, topic, qos)``: the node's publisher maker (a StageNode's ``publisher``,
        so the publisher lives from activate to deactivate)."""
        self.node = node
        self._transforms: dict[str, TransformStamped] = {}
        self._lock = threading.Lock()
        try:
            from tf2_msgs.msg import TFMessage
        except ImportError:
            self._pub = None
            return
        self._msg = TFMessage
        self._pub = publisher_factory(TFMessage, "/tf_static", TF_STATIC_QOS)

    @property
    def available(self) -> bool:
        return self._pub is not None

    def set(self, *transforms: TransformStamped) -> None:
        with self._lock:
            for t in transforms:
                self._transforms[t.child_frame_id] = t
            if self._pub is not None:
                self._pub.publish(self._msg(transforms=list(self._transforms.values())))
