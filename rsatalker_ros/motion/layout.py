"""Layout of one motion frame: the per-frame vector every model, dataset and message in this package uses.

    [ expression (E) | jaw (3) | neck (3) | eyes (6: left 3, right 3) ]     -> E + 12 values

Rotations are axis-angle in radians, in the head's joint frames (FLAME convention: x right, y up, z forward
out of the face; a positive jaw x-rotation opens the mouth). The expression part is in the head's basis:
"arkit52" (52 ARKit blendshape weights, nominally 0..1) for the default head, "flame50"/"flame100" (FLAME
expression PCA coefficients, unitless) for a user's FLAME model. Global rotation and translation are not
predicted by the motion model (the head stays in its frame); neck rotation carries head motion, as in DualTalk.
Frames are at ``MOTION_FPS`` (25 fps, 640 samples of 16 kHz audio per frame) unless stated otherwise.
"""

from dataclasses import dataclass

MOTION_FPS = 25
AUDIO_RATE = 16000
SAMPLES_PER_FRAME = AUDIO_RATE // MOTION_FPS  # 640


@dataclass(frozen=True)
class MotionLayout:
    basis: str            # "arkit52", "flame50" or "flame100"
    n_expression: int     # E

    @property
    def expression(self) -> slice:
        return slice(0, self.n_expression)

    @property
    def jaw(self) -> slice:
        return slice(self.n_expression, self.n_expression + 3)

    @property
    def neck(self) -> slice:
        return slice(self.n_expression + 3, self.n_expression + 6)

    @property
    def eyes(self) -> slice:
        return slice(self.n_expression + 6, self.n_expression + 12)

    @property
    def dim(self) -> int:
        return self.n_expression + 12

    @staticmethod
    def for_basis(basis: str) -> "MotionLayout":
        sizes = {"arkit52": 52, "flame50": 50, "flame100": 100}
        if basis not in sizes:
            raise ValueError(f"unknown expression basis {basis!r}; expected one of {sorted(sizes)}")
        return MotionLayout(basis, sizes[basis])


ARKIT_LAYOUT = MotionLayout.for_basis("arkit52")  # dim 64: the default heads
