"""The 52 ARKit facial actions: the expression basis of the default head ("arkit52").

The order is the one Apple documents for ARFaceAnchor.BlendShapeLocation, grouped by region; it is also what
MediaPipe's face blendshapes and Quest Pro face tracking report (MediaPipe adds a leading "_neutral").
"""

ARKIT52_BASIS = "arkit52"

ARKIT52_NAMES: tuple[str, ...] = (
    # eyes (14)
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    # jaw (4)
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    # mouth (23)
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight", "mouthSmileLeft", "mouthSmileRight",
    "mouthFrownLeft", "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight",
    # brows (5)
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    # cheeks (3)
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    # nose (2)
    "noseSneerLeft", "noseSneerRight",
    # tongue (1)
    "tongueOut",
)
assert len(ARKIT52_NAMES) == 52 and len(set(ARKIT52_NAMES)) == 52

ARKIT52_INDEX: dict[str, int] = {name: i for i, name in enumerate(ARKIT52_NAMES)}
