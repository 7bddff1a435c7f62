"""Conversions between rsatalker_ros messages and the core library's numpy / dataclass types.

Every ``*_from_msg`` validates what it reads and raises ``ValueError`` naming the field, what it held and what was
expected, so a node can log the error and keep running.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from rsatalker_ros.motion.layout import MotionLayout
from rsatalker_ros.social.relation import Hierarchy, Kinship, Relation
from rsatalker_ros.msg import (AudioFrame, FaceMesh, FaceTopology, FlameParams, SocialRelation)

_BYTES_PER_SAMPLE = {AudioFrame.FORMAT_S16LE: 2, AudioFrame.FORMAT_F32LE: 4}


# --- time -----------------------------------------------------------------------------------------------------
def stamp_to_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int, stamp) -> None:
    """Fill a builtin_interfaces/Time in place from integer nanoseconds (>= 0)."""
    stamp.sec, stamp.nanosec = divmod(int(ns), 1_000_000_000)


# --- relationship ---------------------------------------------------------------------------------------------
def relation_to_msg(relation: Relation) -> SocialRelation:
    msg = SocialRelation()
    msg.kinship = int(relation.kinship)
    msg.hierarchy = int(relation.hierarchy)
    msg.senior_participant_id = relation.senior
    msg.label = relation.label
    msg.confidence = float(relation.confidence)
    return msg


def relation_from_msg(msg: SocialRelation) -> Relation:
    if msg.kinship not in (SocialRelation.KINSHIP_BLOOD, SocialRelation.KINSHIP_NON_BLOOD):
        raise ValueError(f"SocialRelation.kinship is {msg.kinship}; expected KINSHIP_BLOOD (0) or KINSHIP_NON_BLOOD (1)")
    if msg.hierarchy not in (SocialRelation.HIERARCHY_EQUAL, SocialRelation.HIERARCHY_UNEQUAL):
        raise ValueError(f"SocialRelation.hierarchy is {msg.hierarchy}; expected HIERARCHY_EQUAL (0) or "
                         "HIERARCHY_UNEQUAL (1)")
    if not math.isfinite(msg.confidence):
        raise ValueError(f"SocialRelation.confidence is {msg.confidence}; expected a number in [0, 1]")
    return Relation(Kinship(msg.kinship), Hierarchy(msg.hierarchy), msg.senior_participant_id, msg.label,
                    float(msg.confidence))


# --- audio ----------------------------------------------------------------------------------------------------
def audio_to_msg(samples: np.ndarray, sample_rate: int, participant_id: str, stamp_ns: int,
                 sample_format: int = AudioFrame.FORMAT_S16LE, frame_id: str = "") -> AudioFrame:
    """samples: float [N] or [N, C] in -1..1 (clipped for S16LE); stamp_ns: capture time of the first sample."""
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"audio samples must be [N] or [N, C], got shape {x.shape}")
    msg = AudioFrame()
    ns_to_stamp(stamp_ns, msg.header.stamp)
    msg.header.frame_id = frame_id
    msg.participant_id = participant_id
    msg.sample_rate = int(sample_rate)
    msg.channels = int(x.shape[1])
    msg.sample_format = int(sample_format)
    if sample_format == AudioFrame.FORMAT_S16LE:
        raw = (np.clip(x, -1.0, 32767 / 32768) * 32768.0).round().astype("<i2").tobytes()
    elif sample_format == AudioFrame.FORMAT_F32LE:
        raw = x.astype("<f4").tobytes()
    else:
        raise ValueError(f"unknown sample_format {sample_format}; expected FORMAT_S16LE (0) or FORMAT_F32LE (1)")
    msg.data = raw
    return msg


def s16le_to_float(raw) -> np.ndarray:
    """raw: bytes of little-endian int16 samples -> float32 [n] in -1..32767/32768 (x / 32768, exact)."""
    x = np.frombuffer(raw, dtype="<i2").astype(np.float32)
    x *= np.float32(1.0 / 32768.0)                 # (in place; exact: a power of two, the numbers of / 32768.0)
    return x


def audio_from_msg(msg: AudioFrame, max_samples: int = 16000 * 10) -> np.ndarray:
    """-> float32 [N, C] in -1..1. Rejects unknown formats, ragged data, non-finite samples and oversized chunks."""
    if msg.sample_format not in _BYTES_PER_SAMPLE:
        raise ValueError(f"AudioFrame.sample_format is {msg.sample_format}; expected FORMAT_S16LE (0) or FORMAT_F32LE (1)")
    if msg.channels < 1:
        raise ValueError(f"AudioFrame.channels is {msg.channels}; expected >= 1")
    if msg.sample_rate <= 0:
        raise ValueError(f"AudioFrame.sample_rate is {msg.sample_rate}; expected a positive rate in Hz")
    raw = bytes(msg.data)
    width = _BYTES_PER_SAMPLE[msg.sample_format] * msg.channels
    if len(raw) == 0:
        raise ValueError("AudioFrame.data is empty; expected at least one sample")
    if len(raw) % width:
        raise ValueError(f"AudioFrame.data has {len(raw)} bytes, not a multiple of {width} "
                         f"({msg.channels} channel(s) x {width // msg.channels} bytes)")
    n = len(raw) // width
    if n > max_samples:
        raise ValueError(f"AudioFrame holds {n} samples per channel; at most {max_samples} expected per chunk")
    if msg.sample_format == AudioFrame.FORMAT_S16LE:
        x = s16le_to_float(raw)
    else:
        x = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise ValueError("AudioFrame.data holds NaN or infinite samples; expected finite floats in -1..1")
    return x.reshape(n, msg.channels)


class _Stamp:
    __slots__ = ("sec", "nanosec")


class _Header:
    __slots__ = ("stamp", "frame_id")


class AudioFrameFields:
    """An AudioFrame's fields read from its serialized form (``audio_frame_from_cdr``): the attributes the checks
    and ``audio_from_msg`` read (header.stamp.sec / nanosec, header.frame_id, participant_id, sample_rate, channels,
    sample_format, data: a memoryview of the serialized bytes), without building the message object."""
    __slots__ = ("header", "participant_id", "sample_rate", "channels", "sample_format", "data")


_CDR_LE = b"\x00\x01"          # RTPS encapsulation CDR_LE (XCDR1, plain, little-endian): what rmw_fastrtps writes
_LE_INT_UINT = struct.Struct("<iI")
_LE_UINT = struct.Struct("<I")
_LE_RATE_CH_FMT = struct.Struct("<IBB")


def _cdr_string(body: memoryview, pos: int, what: str) -> tuple[str, int]:
    """A CDR string at ``pos`` (4-aligned: uint32 length with the NUL, bytes, NUL) -> (text, position after it)."""
    (n,) = _LE_UINT.unpack_from(body, pos)
    end = pos + 4 + n
    if end > len(body):
        raise ValueError(f"{what} claims {n} bytes; the message has {len(body) - pos - 4} left")
    text = str(body[pos + 4:end - 1 if n else end], "utf-8")
    return text, (end + 3) & ~3


def audio_frame_from_cdr(raw: bytes) -> AudioFrameFields | None:
    """A serialized AudioFrame (a raw subscription's message) -> its fields, for ``mono_audio_from_msg``; None when
    the encapsulation is not plain little-endian CDR (then ``rclpy.serialization.deserialize_message`` reads it).
    ValueError (naming the field) when the bytes end before the message does. The same fields as the generated
    message type gives, for a tenth of the CPU: no message object, no per-field setter checks, no sample copy.
    Layout (XCDR1, offsets from the end of the 4-byte encapsulation header, each field aligned to its size):
    header.stamp (int32 sec, uint32 nanosec), header.frame_id (string), participant_id (string), uint32
    sample_rate, uint8 channels, uint8 sample_format, uint8[] data (uint32 count, bytes)."""
    if raw[:2] != _CDR_LE:
        return None
    body = memoryview(raw)[4:]
    try:
        stamp, header, msg = _Stamp(), _Header(), AudioFrameFields()
        stamp.sec, stamp.nanosec = _LE_INT_UINT.unpack_from(body, 0)
        header.stamp = stamp
        header.frame_id, pos = _cdr_string(body, 8, "AudioFrame.header.frame_id")
        msg.header = header
        msg.participant_id, pos = _cdr_string(body, pos, "AudioFrame.participant_id")
        msg.sample_rate, msg.channels, msg.sample_format = _LE_RATE_CH_FMT.unpack_from(body, pos)
        pos = (pos + 6 + 3) & ~3
        (n,) = _LE_UINT.unpack_from(body, pos)
    except struct.error as err:
        raise ValueError(f"serialized AudioFrame of {len(raw)} bytes ends early ({err})") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"serialized AudioFrame holds a string that is not UTF-8 ({err})") from None
    if pos + 4 + n > len(body):
        raise ValueError(f"AudioFrame.data claims {n} bytes; the serialized message has {len(body) - pos - 4} left")
    msg.data = body[pos + 4:pos + 4 + n]
    return msg


# --- serialized messages published at frame rate ---------------------------------------------------------------
def _align4(pos: int) -> int:
    return (pos + 3) & ~3


def _after_string(pos: int, text: str) -> int:
    """CDR position after a string field written at ``pos`` (4-aligned uint32 length with the NUL, bytes, NUL)."""
    return _align4(pos) + 4 + len(text.encode("utf-8")) + 1


class SerializedMessage:
    """One message in its serialized form (``rclpy.serialization.serialize_message``, the rmw's own bytes), kept
    to be published again with new values in its fixed-size fields: ``field(name)`` is a writable numpy view of a
    field in the bytes, ``stamp(ns)`` sets header.stamp, ``bytes()`` the message to ``Publisher.publish``.
    A frame's messages differ from the last frame's only in such fields; this spares rclpy's Python -> C
    conversion and the rmw's serialization of the whole message on every publish (about a third of a publish's
    CPU). ``fields``: name -> (offset in the serialized body, numpy dtype, count), from the message's layout
    (the ``*_fields`` functions below, XCDR1 little-endian: the encapsulation rmw_fastrtps writes). ``ok`` is
    False when the bytes are not that encoding or a field does not hold the value the message has (the layout
    does not fit this rmw's bytes): the caller then publishes message objects."""

    def __init__(self, msg, fields: dict, expect: dict):
        from rclpy.serialization import serialize_message
        self._buf = bytearray(serialize_message(msg))
        self._views = {}
        self.ok = self._buf[:2] == _CDR_LE
        for name, (pos, dtype, count) in fields.items():
            if not self.ok or 4 + pos + np.dtype(dtype).itemsize * count > len(self._buf):
                self.ok = False
                break
            self._views[name] = np.frombuffer(self._buf, dtype, count, 4 + pos)
        # the layout's check: every field reads back the value the message was serialized with
        self.ok = self.ok and all(np.array_equal(self._views[k], np.asarray(v, self._views[k].dtype).reshape(-1))
                                  for k, v in expect.items())

    def field(self, name: str) -> np.ndarray:
        return self._views[name]

    def stamp(self, ns: int) -> None:
        self._views["stamp"][:] = divmod(int(ns), 1_000_000_000)

    def bytes(self) -> bytes:
        return bytes(self._buf)


_STAMP = (0, "<u4", 2)          # header.stamp: int32 sec (>= 0 here), uint32 nanosec, first in the body


def _stamp_of(header) -> tuple:
    return header.stamp.sec, header.stamp.nanosec


def face_mesh_fields(msg: FaceMesh) -> tuple[dict, dict]:
    """(fields, their values in msg) of a FaceMesh for ``SerializedMessage``: header.stamp and vertices."""
    pos = _after_string(8, msg.header.frame_id)
    pos = _after_string(_after_string(pos, msg.participant_id), msg.topology_id)
    n = len(msg.vertices)
    return ({"stamp": _STAMP, "vertices": (_align4(pos) + 4, "<f4", n)},
            {"stamp": _stamp_of(msg.header), "vertices": np.asarray(msg.vertices, np.float32)})


def social_motion_fields(msg) -> tuple[dict, dict]:
    """(fields, their values in msg) of a SocialMotion for ``SerializedMessage``: header.stamp, role,
    params.expression / jaw_pose / neck_pose / eye_pose, turn_index (the rest stays as serialized)."""
    p = msg.params
    pos = _after_string(_after_string(8, msg.header.frame_id), msg.participant_id)
    role = pos
    pos = _after_string(pos + 1, p.expression_basis)
    n = len(p.expression)
    expression = _align4(pos) + 4
    jaw = expression + 4 * n                                 # float32[3] jaw, neck, global_rotation, [6] eyes,
    neck, eyes = jaw + 12, jaw + 36                          # [3] translation, then float32[] shape
    pos = _align4(eyes + 24 + 12) + 4 + 4 * len(p.shape)
    r = msg.relation                                         # uint8 kinship, hierarchy, 2 strings, float32
    pos = _after_string(_after_string(pos + 2, r.senior_participant_id), r.label)
    turn = _align4(_align4(pos) + 4)
    return ({"stamp": _STAMP, "role": (role, "u1", 1), "expression": (expression, "<f4", n),
             "jaw_pose": (jaw, "<f4", 3), "neck_pose": (neck, "<f4", 3), "eye_pose": (eyes, "<f4", 6),
             "turn_index": (turn, "<u4", 1)},
            {"stamp": _stamp_of(msg.header), "role": msg.role, "expression": np.asarray(p.expression, np.float32),
             "jaw_pose": p.jaw_pose, "neck_pose": p.neck_pose, "eye_pose": p.eye_pose,
             "turn_index": msg.turn_index})


def transform_fields(msg) -> tuple[dict, dict]:
    """(fields, their values in msg) of a geometry_msgs/TransformStamped for ``SerializedMessage``: header.stamp."""
    return {"stamp": _STAMP}, {"stamp": _stamp_of(msg.header)}


# --- face parameters ------------------------------------------------------------------------------------------
def motion_to_flame_params(motion: np.ndarray, layout: MotionLayout, reuse: FlameParams | None = None) -> FlameParams:
    """motion: [layout.dim] one frame in rsatalker_ros.motion.layout order. reuse: a FlameParams this function
    filled before (and that has been published): its arrays are overwritten in place."""
    m = np.asarray(motion, dtype=np.float32).reshape(-1)
    if m.shape[0] != layout.dim:
        raise ValueError(f"motion frame has {m.shape[0]} values; expected {layout.dim} for basis {layout.basis}")
    msg = FlameParams() if reuse is None else reuse
    msg.expression_basis = layout.basis
    # numpy float32 arrays for the fixed-size fields and array.array for the sequence: the generated setters
    # take them as they are instead of checking every element of a list
    msg.expression = float32_sequence(m[layout.expression], check_finite=False, reuse=msg.expression)
    if reuse is None:
        msg.jaw_pose, msg.neck_pose, msg.eye_pose = m[layout.jaw].copy(), m[layout.neck].copy(), m[layout.eyes].copy()
    else:
        msg.jaw_pose[:], msg.neck_pose[:], msg.eye_pose[:] = m[layout.jaw], m[layout.neck], m[layout.eyes]
    return msg


def flame_params_to_motion(msg: FlameParams) -> tuple[np.ndarray, MotionLayout]:
    """-> (motion [layout.dim], layout). Global rotation, translation and shape are not part of the motion frame."""
    layout = MotionLayout.for_basis(msg.expression_basis)
    expr = np.asarray(msg.expression, dtype=np.float32)
    if expr.shape[0] != layout.n_expression:
        raise ValueError(f"FlameParams.expression has {expr.shape[0]} values; expected {layout.n_expression} "
                         f"for basis {layout.basis!r}")
    m = np.concatenate([expr, np.asarray(msg.jaw_pose, np.float32), np.asarray(msg.neck_pose, np.float32),
                        np.asarray(msg.eye_pose, np.float32)])
    if not np.all(np.isfinite(m)):
        raise ValueError("FlameParams holds NaN or infinite values; expected finite coefficients and angles")
    return m, layout


# --- meshes ---------------------------------------------------------------------------------------------------
def mesh_to_msg(vertices: np.ndarray, participant_id: str, topology_id: str, stamp_ns: int,
                frame_id: str, reuse: FaceMesh | None = None) -> FaceMesh:
    """vertices: [V, 3] metres in the head frame. Copied without per-element checks (fast enough for 25 Hz meshes);
    receivers validate with ``mesh_from_msg``. reuse: a FaceMesh this function made before and that has been
    published: filled again, its vertex buffer overwritten in place when the size is unchanged."""
    v = np.asarray(vertices, dtype=np.float32)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be [V, 3], got {v.shape}")
    msg = FaceMesh() if reuse is None else reuse
    ns_to_stamp(stamp_ns, msg.header.stamp)
    msg.header.frame_id = frame_id
    msg.participant_id = participant_id
    msg.topology_id = topology_id
    msg.vertices = float32_sequence(v, check_finite=False, reuse=msg.vertices)
    return msg


def mesh_from_msg(msg: FaceMesh, n_vertices: int | None = None) -> np.ndarray:
    v = np.asarray(msg.vertices, dtype=np.float32)
    if v.size % 3:
        raise ValueError(f"FaceMesh.vertices has {v.size} values, not a multiple of 3")
    v = v.reshape(-1, 3)
    if n_vertices is not None and v.shape[0] != n_vertices:
        raise ValueError(f"FaceMesh has {v.shape[0]} vertices; expected {n_vertices} for topology {msg.topology_id!r}")
    if not np.all(np.isfinite(v)):
        raise ValueError("FaceMesh.vertices holds NaN or infinite values")
    return v


def topology_to_msg(faces: np.ndarray, n_vertices: int, topology_id: str) -> FaceTopology:
    f = np.asarray(faces, dtype=np.int64)
    if f.ndim != 2 or f.shape[1] != 3 or f.min() < 0 or f.max() >= n_vertices:
        raise ValueError(f"faces must be [F, 3] indices below {n_vertices}, got shape {f.shape}")
    msg = FaceTopology()
    msg.topology_id = topology_id
    msg.vertex_count = int(n_vertices)
    msg.triangles = f.astype(np.uint32).reshape(-1)
    return msg


def topology_from_msg(msg: FaceTopology) -> np.ndarray:
    f = np.asarray(msg.triangles, dtype=np.int64)
    if f.size % 3:
        raise ValueError(f"FaceTopology.triangles has {f.size} values, not a multiple of 3")
    f = f.reshape(-1, 3)
    if f.size and f.max() >= msg.vertex_count:
        raise ValueError(f"FaceTopology.triangles indexes vertex {f.max()}; only {msg.vertex_count} exist")
    return f


class MeshMarker:
    """An rviz2 TRIANGLE_LIST marker (visualization_msgs/Marker) of one posed mesh, kept between poses.

    Its ``points`` hold one geometry_msgs/Point per *vertex*, each listed at every triangle corner that uses it
    (``3 F`` entries, ``V`` objects): a new pose rewrites the ``V`` points in place instead of constructing ``3 F``
    new ones (~3.5x as many, each a checked message construction). ``pose(vertices, stamp_ns) -> Marker``
    returns the same message object every time: publish it before the next pose.
    faces: [F, 3] vertex indices; vertices: [V, 3] metres in ``frame_id``."""

    def __init__(self, faces: np.ndarray, n_vertices: int, frame_id: str, ns: str,
                 rgba: tuple = (0.85, 0.7, 0.6, 1.0)):
        from geometry_msgs.msg import Point
        from std_msgs.msg import ColorRGBA
        from visualization_msgs.msg import Marker
        f = np.asarray(faces, dtype=np.int64)
        if f.ndim != 2 or f.shape[1] != 3 or f.min() < 0 or f.max() >= n_vertices:
            raise ValueError(f"faces must be [F, 3] indices below {n_vertices}, got shape {f.shape}")
        self.n_vertices = int(n_vertices)
        # the coordinates below are Python floats from numpy: the generated setters' type checks add nothing
        self.points = [Point(check_fields=False) for _ in range(self.n_vertices)]
        m = Marker()
        m.header.frame_id = frame_id
        m.ns, m.id, m.type, m.action = ns, 0, Marker.TRIANGLE_LIST, Marker.ADD
        m.pose.orientation.w = 1.0
        m.scale.x = m.scale.y = m.scale.z = 1.0
        m.color = ColorRGBA(r=rgba[0], g=rgba[1], b=rgba[2], a=rgba[3])
        m.points = [self.points[i] for i in f.reshape(-1).tolist()]
        self.msg = m

    def pose(self, vertices: np.ndarray, stamp_ns: int):
        v = np.asarray(vertices, dtype=np.float64)
        if v.shape != (self.n_vertices, 3):
            raise ValueError(f"vertices must be [{self.n_vertices}, 3], got {v.shape}")
        for p, (x, y, z) in zip(self.points, v.tolist()):
            p.x, p.y, p.z = x, y, z
        ns_to_stamp(stamp_ns, self.msg.header.stamp)
        return self.msg


def mono_audio_from_msg(msg: AudioFrame, participant_id: str, limits,
                        now_ns: int | None = None) -> tuple[np.ndarray | None, object]:
    """One participant's AudioFrame as the nodes take it -> (mono float32 [n], None), or (None, Rejection) naming
    the cause: the frame is checked before decoding (participant, stamp within limits.max_future_s /
    limits.max_age_s of ``now_ns``, the node's clock [ns]; None = not checked, format, rate, mono, declared size)
    and its samples after (finite, within limits.max_abs_sample). limits: InputLimits (a node's config).
    msg: the message, or its fields read by ``audio_frame_from_cdr``."""
    from rsatalker_ros.input_limits import Rejection, check_audio, check_samples
    why = check_audio(msg, limits, participant_id, now_ns)
    if why is not None:
        return None, why
    if msg.sample_format == AudioFrame.FORMAT_S16LE and limits.max_abs_sample >= 1.0:
        # check_audio passed: mono, a whole number of samples, 1..max_chunk_s of them (what audio_from_msg would
        # check again); S16LE is finite and within [-1, 32767/32768] by construction: nothing to check after
        return s16le_to_float(msg.data), None
    try:
        x = audio_from_msg(msg, max_samples=int(limits.max_chunk_s * limits.sample_rate))[:, 0]
    except ValueError as err:
        return None, Rejection("non_finite" if "finite" in str(err) else "format", str(err))
    why = check_samples(x, limits)
    return (None, why) if why is not None else (x, None)


# --- images ---------------------------------------------------------------------------------------------------
def image_to_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str, reuse=None):
    """rgb: uint8 [H, W, 3] -> sensor_msgs/Image (encoding rgb8, row-major from the top-left pixel).

    reuse: an Image this function made before and that has been published (a publisher serialises the message in
    ``publish``): it is filled again, its data buffer overwritten in place when the size is unchanged (one copy
    into memory already mapped, instead of a new 786 kB buffer per 512 x 512 frame)."""
    import array

    from sensor_msgs.msg import Image
    a = np.ascontiguousarray(rgb)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"image must be uint8 [H, W, 3], got {a.dtype} {a.shape}")
    msg = Image() if reuse is None else reuse
    ns_to_stamp(stamp_ns, msg.header.stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(a.shape[0]), int(a.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = int(a.shape[1] * 3)
    data = msg.data
    if isinstance(data, array.array) and data.typecode == "B" and len(data) == a.size:
        memoryview(data)[:] = a.reshape(-1)
    else:
        data = array.array("B")
        data.frombytes(a.reshape(-1))          # one copy (bytes would be copied twice: tobytes, then the setter)
        msg.data = data
    return msg


def image_from_msg(msg) -> np.ndarray:
    """sensor_msgs/Image rgb8 / bgr8 -> uint8 [H, W, 3] rgb."""
    if msg.encoding not in ("rgb8", "bgr8"):
        raise ValueError(f"Image.encoding is {msg.encoding!r}; expected 'rgb8' or 'bgr8'")
    if msg.step < msg.width * 3:
        raise ValueError(f"Image.step {msg.step} is shorter than width * 3 = {msg.width * 3}")
    raw = np.frombuffer(bytes(msg.data), np.uint8)
    if raw.size != msg.step * msg.height:
        raise ValueError(f"Image.data has {raw.size} bytes; expected step * height = {msg.step * msg.height}")
    img = raw.reshape(msg.height, msg.step)[:, :msg.width * 3].reshape(msg.height, msg.width, 3)
    return img[..., ::-1].copy() if msg.encoding == "bgr8" else img.copy()


def compressed_image_to_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str, quality: int = 85):
    """uint8 [H, W, 3] rgb -> sensor_msgs/CompressedImage (format "rgb8; jpeg compressed bgr8", image_transport's
    name for JPEG from an rgb8 image)."""
    import io

    from PIL import Image as PILImage
    from sensor_msgs.msg import CompressedImage
    buf = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(rgb)).save(buf, format="JPEG", quality=int(quality))
    msg = CompressedImage()
    ns_to_stamp(stamp_ns, msg.header.stamp)
    msg.header.frame_id = frame_id
    msg.format = "rgb8; jpeg compressed bgr8"
    msg.data = buf.getvalue()
    return msg


def camera_info_to_msg(camera_info: dict, stamp_ns: int, frame_id: str):
    """A ``Camera.to_camera_info_dict()`` -> sensor_msgs/CameraInfo stamped ``stamp_ns``."""
    from sensor_msgs.msg import CameraInfo, RegionOfInterest
    d = camera_info
    msg = CameraInfo(height=int(d["height"]), width=int(d["width"]), distortion_model=d["distortion_model"],
                     d=[float(x) for x in d["d"]], k=[float(x) for x in d["k"]], r=[float(x) for x in d["r"]],
                     p=[float(x) for x in d["p"]], binning_x=int(d["binning_x"]), binning_y=int(d["binning_y"]),
                     roi=RegionOfInterest(**d["roi"]))
    ns_to_stamp(stamp_ns, msg.header.stamp)
    msg.header.frame_id = frame_id
    return msg


def float32_sequence(values: np.ndarray, check_finite: bool = True, reuse=None):
    """numpy -> array.array('f') for a float32[] message field: assigning it skips the generated setter's
    per-element Python checks (milliseconds for a mesh). reuse: the field's current array.array, overwritten in
    place (no new buffer) and returned when it has the same length."""
    import array
    a = np.ascontiguousarray(values, dtype="<f4").reshape(-1)
    if check_finite and not np.all(np.isfinite(a)):
        raise ValueError("values hold NaN or infinite numbers; expected finite float32")
    if isinstance(reuse, array.array) and reuse.typecode == "f" and len(reuse) == a.size:
        np.frombuffer(reuse, np.float32)[:] = a
        return reuse
    out = array.array("f")
    out.frombytes(a.tobytes())
    return out
