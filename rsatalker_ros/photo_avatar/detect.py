"""Offline face detection, 68 landmarks and the identity descriptor, with dlib.

The models ship inside PyPI packages, nothing is downloaded: dlib's HOG frontal-face detector is built into
``dlib-bin``; the 68-point shape predictor (iBUG 300-W layout) and the ResNet face descriptor (128-d; two photos
of one person are closer than 0.6) ship in ``face-recognition-models``.

68-point layout: 0-16 jaw contour (the face's right to left as seen in the image), 17-26 brows, 27-35 nose,
36-41 the image-left eye, 42-47 the image-right eye, 48-67 mouth.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_PIXELS = 40_000_000        # refuse larger images (a decompression bomb must not allocate without bound)
MIN_IOD_PX = 24.0              # smallest distance between the eye centres in pixels that is fitted
MAX_TURN = 0.85                # largest |nose offset| / half face width (measured on renders: 0.3 at 10, 0.55 at
                               # 20, 0.75 at 30, 0.95 at 40 degrees of yaw): about 35 degrees
DETECT_THRESHOLD = 0.3         # HOG detection score that counts as a face
DETECT_SIDE = 1024             # detection runs on a copy scaled to at most this many pixels per side
JAW, BROWS, NOSE, EYE_R_IMG, EYE_L_IMG, MOUTH = (slice(0, 17), slice(17, 27), slice(27, 36), slice(36, 42),
                                                 slice(42, 48), slice(48, 68))


class PhotoError(ValueError):
    """A photo that cannot make an avatar; the message says what was wrong and what is expected."""


@dataclass
class FaceDetection:
    """One face: box (left, top, right, bottom) in pixels, landmarks [68, 2] float (x, y) pixels, score."""
    box: tuple
    landmarks: np.ndarray
    score: float

    @property
    def eye_centers(self) -> np.ndarray:
        """[2, 2]: the centre of the image-left eye, then the image-right eye."""
        return np.stack([self.landmarks[EYE_R_IMG].mean(0), self.landmarks[EYE_L_IMG].mean(0)])

    @property
    def inter_ocular(self) -> float:
        """Distance between the eye centres, pixels."""
        e = self.eye_centers
        return float(np.linalg.norm(e[1] - e[0]))

    @property
    def turn(self) -> float:
        """Sideways turn in -1..1: the nose tip's offset from the middle of the jaw contour over half its width."""
        lm = self.landmarks
        left, right = lm[0], lm[16]
        axis = right - left
        t = float(np.dot(lm[30] - left, axis) / max(float(np.dot(axis, axis)), 1e-9))   # 0..1 along the contour
        return 2.0 * t - 1.0


def load_photo(path) -> np.ndarray:
    """An image file -> rgb uint8 [H, W, 3] (EXIF orientation applied). Raises PhotoError if it is unreadable,
    not an image, or larger than MAX_PIXELS."""
    from PIL import Image, ImageOps, UnidentifiedImageError
    p = Path(path)
    if not p.is_file():
        raise PhotoError(f"photo {str(p)!r} does not exist (expected a JPEG or PNG file)")
    try:
        with Image.open(p) as im:
            if im.width * im.height > MAX_PIXELS:
                raise PhotoError(f"photo {p} is {im.width}x{im.height} pixels; at most {MAX_PIXELS // 1_000_000} "
                                 f"megapixels are read")
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB"))
    except PhotoError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise PhotoError(f"photo {p} is not a readable image ({type(e).__name__}: {e}); expected a JPEG or PNG "
                         f"file") from e


@functools.lru_cache(maxsize=1)
def _models():
    try:
        import dlib
        import face_recognition_models as frm
    except ImportError as e:  # pragma: no cover - both are requirements
        raise ImportError("face detection needs dlib-bin and face-recognition-models (see requirements.txt)") from e
    return (dlib, dlib.get_frontal_face_detector(), dlib.shape_predictor(frm.pose_predictor_model_location()),
            dlib.face_recognition_model_v1(frm.face_recognition_model_location()))


def _rect(dlib, box):
    return dlib.rectangle(*[int(round(x)) for x in box])


def landmarks_in_box(image: np.ndarray, box) -> np.ndarray:
    """The 68 landmarks [68, 2] of the face inside ``box`` (left, top, right, bottom), pixels."""
    dlib, _, predictor, _ = _models()
    shape = predictor(np.ascontiguousarray(image), _rect(dlib, box))
    return np.array([[p.x, p.y] for p in shape.parts()], np.float64)


def find_faces(image: np.ndarray, threshold: float = DETECT_THRESHOLD) -> list[FaceDetection]:
    """Every frontal-ish face in ``image`` (rgb uint8 [H, W, 3]) with its landmarks, best first."""
    dlib, detector, _, _ = _models()
    h, w = image.shape[:2]
    scale = min(1.0, DETECT_SIDE / max(h, w))
    small = image
    if scale < 1.0:
        from PIL import Image
        small = np.asarray(Image.fromarray(image).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                                          Image.BILINEAR))
    upsample = 1 if max(small.shape[:2]) < 800 else 0
    rects, scores, _ = detector.run(np.ascontiguousarray(small), upsample, threshold)
    out = []
    for r, s in sorted(zip(rects, scores), key=lambda x: -x[1]):
        box = (r.left() / scale, r.top() / scale, r.right() / scale, r.bottom() / scale)
        out.append(FaceDetection(box, landmarks_in_box(image, box), float(s)))
    return out


def detect_face(image: np.ndarray, name: str = "the photo") -> FaceDetection:
    """The one face of a portrait, or PhotoError naming the problem: no face, several faces, a face too small,
    or one turned too far to the side."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise PhotoError(f"{name}: expected an rgb uint8 image [H, W, 3], got {image.dtype} {image.shape}")
    faces = find_faces(image)
    if not faces:
        raise PhotoError(f"no face found in {name} ({image.shape[1]}x{image.shape[0]} px): expected one person "
                         f"looking roughly at the camera, eyes at least {MIN_IOD_PX:.0f} px apart")
    if len(faces) > 1:
        boxes = ", ".join(f"({', '.join(str(int(v)) for v in f.box)})" for f in faces)
        raise PhotoError(f"{len(faces)} faces found in {name} at boxes {boxes}: expected exactly one; crop the "
                         f"photo to the person")
    face = faces[0]
    if face.inter_ocular < MIN_IOD_PX:
        raise PhotoError(f"the face in {name} is too small: its eyes are {face.inter_ocular:.1f} px apart; expected "
                         f"at least {MIN_IOD_PX:.0f} px (use a larger or closer photo)")
    if abs(face.turn) > MAX_TURN:
        raise PhotoError(f"the face in {name} is turned too far to the side (nose offset {face.turn:+.2f} of the "
                         f"half face width; at most {MAX_TURN:.2f}, about 35 degrees of yaw): expected a frontal "
                         f"portrait, not a profile")
    return face


def face_descriptor(image: np.ndarray, face: FaceDetection | None = None) -> np.ndarray:
    """dlib's 128-d identity descriptor of the face in ``image`` (detected if ``face`` is None); two photos of one
    person are usually closer than 0.6 (Euclidean distance)."""
    dlib, _, predictor, encoder = _models()
    face = face or detect_face(image)
    shape = predictor(np.ascontiguousarray(image), _rect(dlib, face.box))
    return np.asarray(encoder.compute_face_descriptor(np.ascontiguousarray(image), shape), np.float64)


def identity_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two face descriptors (dlib: < 0.6 = the same person)."""
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))
