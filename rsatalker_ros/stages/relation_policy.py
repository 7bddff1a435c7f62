"""The relationship as parameters, and where it comes from, for the conversation and motion stages. Pure Python.

``RelationFields`` are the four relation_* parameters both configs inherit (runtime: ``ros2 param set`` changes
them live). ``RelationPolicy`` holds the relationship in force: the parameters give it at start and whenever they
describe a complete relationship again (``ros2 param set`` changes one parameter at a time, so 'unequal' set before
relation_senior is kept pending, with a note, instead of refused); a relationship heard on a topic replaces it
when accepted. A senior who is not one of the participants is refused either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from rsatalker_ros.social.relation import Relation
from rsatalker_ros.stages.params import param


@dataclass(frozen=True)
class RelationFields:
    relation_kinship: str = param("non_blood", "relationship kinship: blood (parent-child, siblings, ...) or "
                                  "non_blood (friends, colleagues, strangers, ...)", choices=("blood", "non_blood"),
                                  runtime=True)
    relation_hierarchy: str = param("equal", "relationship hierarchy", choices=("equal", "unequal"), runtime=True)
    relation_senior: str = param("", "participant id holding the senior role when hierarchy is unequal; '' when "
                                 "equal", runtime=True)
    relation_label: str = param("", "free-text label for humans and logs, e.g. mother-daughter", runtime=True)


def relation_of(cfg: RelationFields) -> Relation:
    """The relationship the parameters describe (ValueError when they are not consistent, e.g. unequal without a
    senior)."""
    return Relation.parse(cfg.relation_kinship, cfg.relation_hierarchy, cfg.relation_senior, cfg.relation_label)


class RelationPolicy:
    def __init__(self, cfg: RelationFields, participants):
        self.participants = tuple(participants)
        self.relation = self.check(relation_of(cfg))

    def check(self, rel: Relation) -> Relation:
        if rel.senior and rel.senior not in self.participants:
            raise ValueError(f"the relationship's senior participant {rel.senior!r} is not one of "
                             f"{list(self.participants)}")
        return rel

    def from_parameters(self, cfg: RelationFields) -> str:
        """New relation_* values: takes them when they are consistent and returns '' (or a note when they are
        still incomplete: the relationship in force stays). ValueError when the senior is not a participant."""
        if cfg.relation_senior and cfg.relation_senior not in self.participants:
            raise ValueError(f"relation_senior {cfg.relation_senior!r} is not one of the participants "
                             f"{list(self.participants)}")
        try:
            rel = relation_of(cfg)
        except ValueError as err:
            return f"relationship parameters incomplete ({err}); keeping {self.relation}"
        self.relation = rel
        return ""

    def heard(self, rel: Relation) -> bool:
        """A relationship from a message (checked; ValueError when refused); True when it changed."""
        rel = self.check(rel)
        changed = rel != self.relation
        self.relation = rel
        return changed
