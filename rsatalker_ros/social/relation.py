"""The relationship taxonomy: kinship x hierarchy, plus who is senior (DESIGN.md section 4).

From one participant's point of view a relationship has a *direction*: PEER when the hierarchy is EQUAL, SENIOR
or JUNIOR when it is UNEQUAL. The socially-aware module specialises its query tokens by
(kinship, hierarchy, direction): 2 x (1 + 2) = 6 query sets. Relationship *classes* for evaluation are the 4
kinship x hierarchy combinations (chance 25%).
"""

from dataclasses import dataclass
from enum import IntEnum


class Kinship(IntEnum):
    BLOOD = 0       # parent-child, siblings, grandparent-grandchild, ...
    NON_BLOOD = 1   # friends, colleagues, spouses, teacher-student, boss-employee, strangers, ...


class Hierarchy(IntEnum):
    EQUAL = 0
    UNEQUAL = 1


class Direction(IntEnum):
    PEER = 0     # EQUAL relationship
    SENIOR = 1   # this participant holds the senior role of an UNEQUAL relationship
    JUNIOR = 2   # the partner holds it


@dataclass(frozen=True)
class Relation:
    kinship: Kinship
    hierarchy: Hierarchy
    senior: str = ""        # participant id holding the senior role; required when UNEQUAL, empty when EQUAL
    label: str = ""         # free text for humans and logs, e.g. "mother-daughter"
    confidence: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "kinship", Kinship(self.kinship))
        object.__setattr__(self, "hierarchy", Hierarchy(self.hierarchy))
        if self.hierarchy == Hierarchy.UNEQUAL and not self.senior:
            raise ValueError("an UNEQUAL relationship needs the id of the senior participant (got none)")
        if self.hierarchy == Hierarchy.EQUAL and self.senior:
            raise ValueError(f"an EQUAL relationship has no senior participant (got {self.senior!r})")
        if not 0.0 <= float(self.confidence) <= 1.0:
            raise ValueError(f"confidence must lie in [0, 1], got {self.confidence}")

    @property
    def class_index(self) -> int:
        """0..3 = kinship * 2 + hierarchy: BLOOD/EQUAL, BLOOD/UNEQUAL, NON_BLOOD/EQUAL, NON_BLOOD/UNEQUAL."""
        return int(self.kinship) * 2 + int(self.hierarchy)

    def direction_for(self, participant: str) -> Direction:
        if self.hierarchy == Hierarchy.EQUAL:
            return Direction.PEER
        return Direction.SENIOR if participant == self.senior else Direction.JUNIOR

    def query_index_for(self, participant: str) -> int:
        """0..5: which of the 6 specialised query sets this participant's motion is conditioned on."""
        return int(self.kinship) * 3 + int(self.direction_for(participant))

    @staticmethod
    def parse(kinship: str, hierarchy: str, senior: str = "", label: str = "", confidence: float = 1.0) -> "Relation":
        """From user-facing strings (parameters, CLI); case-insensitive, '-' or '_' accepted."""
        def pick(enum, text, what):
            key = str(text).strip().upper().replace("-", "_")
            if key not in enum.__members__:
                raise ValueError(f"unknown {what} {text!r}; expected one of {[m.lower() for m in enum.__members__]}")
            return enum[key]
        return Relation(pick(Kinship, kinship, "kinship"), pick(Hierarchy, hierarchy, "hierarchy"),
                        senior, label, confidence)


N_RELATION_CLASSES = 4
N_QUERY_SETS = 6
CLASS_NAMES = ("blood/equal", "blood/unequal", "non_blood/equal", "non_blood/unequal")
