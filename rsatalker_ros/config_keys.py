"""The one check every dataclass config (model, training stages 1-3) runs on a dict read from YAML or JSON."""

from dataclasses import fields


def reject_unknown_keys(d: dict, cls, what: str) -> None:
    """ValueError naming the keys of ``d`` that are not fields of the dataclass ``cls`` (``what``: e.g. 'training
    config'), so a misspelt key in a config file is never silently ignored."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {what} keys {unknown}; expected a subset of {sorted(known)}")
