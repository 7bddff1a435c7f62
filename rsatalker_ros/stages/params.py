"""Stage configs as dataclasses whose fields carry what a ROS parameter needs. Pure Python (no rclpy).

    @dataclass(frozen=True)
    class RenderConfig:
        width: int = param(512, "image width", units="px", low=16, high=4096)
        jpeg_quality: int = param(85, "JPEG quality", low=1, high=100, runtime=True)
        backend: str = param("auto", "rasteriser", choices=("auto", "cpu", "gsplat"))

The dataclass is the one source of every default. From it come the ROS parameter descriptors (description, units,
range, read_only unless ``runtime``; rsatalker_ros.ros.lifecycle_adapter), the checks of values from parameter files
and ``ros2 param set`` (``build``, ``update``: ValueError naming the parameter, what it got and what it expects), and
the commented config/<executable>.yaml files (``config_yaml``; test_stage_params checks they are up to date).
Cross-field rules go in the dataclass's ``__post_init__`` (raise ValueError); they run on every build and update.

Types follow the default: bool, int, float, str, or a tuple of one of them (a ROS array parameter).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: object
    description: str
    units: str = ""                 # shown as "[units]" after the description
    low: float | None = None        # inclusive range (numbers, or each element of a numeric tuple)
    high: float | None = None
    choices: tuple = ()             # allowed values (strings)
    runtime: bool = False           # may change while the node runs (else read-only once declared)

    @property
    def kind(self) -> type:
        return type(self.default[0]) if isinstance(self.default, tuple) else type(self.default)

    def full_description(self) -> str:
        text = self.description + (f" [{self.units}]" if self.units else "")
        if self.choices:
            text += f"; one of: {', '.join(map(str, self.choices))}"
        return text

    def constraints(self) -> str:
        """Human-readable limits (ParameterDescriptor.additional_constraints)."""
        out = []
        if self.low is not None or self.high is not None:
            out.append(f"{self.low if self.low is not None else '-inf'} .. {self.high if self.high is not None else 'inf'}")
        if self.choices:
            out.append("one of " + ", ".join(map(str, self.choices)))
        if not self.runtime:
            out.append("read-only while the node runs (set it in the parameter file)")
        return "; ".join(out)


def param(default, description: str, *, units: str = "", low: float | None = None, high: float | None = None,
          choices: tuple = (), runtime: bool = False):
    """A config field that is also a ROS parameter. Lists are given as tuples (the field stays immutable)."""
    if isinstance(default, list):
        raise TypeError("give array defaults as tuples")
    if isinstance(default, tuple) and not default:
        raise TypeError("an array default needs at least one element (it fixes the ROS parameter type)")
    meta = {"param": dict(description=description, units=units, low=low, high=high, choices=tuple(choices),
                          runtime=runtime)}
    return dataclasses.field(default=default, metadata=meta)


def specs(cls) -> list[ParamSpec]:
    """The parameters of a config dataclass, in field order."""
    out = []
    for f in dataclasses.fields(cls):
        if "param" in f.metadata:
            out.append(ParamSpec(f.name, f.default, **f.metadata["param"]))
    return out


def check_value(spec: ParamSpec, value):
    """``value`` converted to the field's type, or ValueError naming the parameter, the value and the expectation."""
    def bad(expected: str):
        return ValueError(f"parameter {spec.name!r} is {value!r}; expected {expected}")

    kind = spec.kind
    items = value if isinstance(spec.default, tuple) else [value]
    if isinstance(spec.default, tuple) and not isinstance(value, (list, tuple)):
        raise bad(f"a list of {kind.__name__}")
    conv = []
    for v in items:
        if kind is bool:
            if not isinstance(v, bool):
                raise bad("true or false")
        elif kind is int:
            if isinstance(v, bool) or not isinstance(v, int):
                raise bad("an integer")
        elif kind is float:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise bad("a number")
            v = float(v)
            if not math.isfinite(v):
                raise bad("a finite number")
        elif kind is str and not isinstance(v, str):
            raise bad("a string")
        if spec.low is not None and v < spec.low or spec.high is not None and v > spec.high:
            raise bad(f"{spec.low} .. {spec.high}" + (f" {spec.units}" if spec.units else ""))
        if spec.choices and v not in spec.choices:
            raise bad("one of " + ", ".join(repr(c) for c in spec.choices))
        conv.append(v)
    return tuple(conv) if isinstance(spec.default, tuple) else conv[0]


def build(cls, values: dict):
    """A config from parameter values (missing ones take the defaults); ValueError for an unknown name, a bad
    value, or a cross-field rule of the dataclass."""
    known = {s.name: s for s in specs(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for {cls.__name__}; expected some of {sorted(known)}")
    return cls(**{k: check_value(known[k], v) for k, v in values.items()})


def update(cfg, changes: dict):
    """``cfg`` with runtime-changeable parameters changed; ValueError for a read-only one or a bad value."""
    known = {s.name: s for s in specs(type(cfg))}
    for name in changes:
        if name not in known:
            raise ValueError(f"unknown parameter {name!r}")
        if not known[name].runtime:
            raise ValueError(f"parameter {name!r} is read-only while the node runs; set it in the parameter file")
    return dataclasses.replace(cfg, **{k: check_value(known[k], v) for k, v in changes.items()})


@dataclass(frozen=True)
class LifecycleFields:
    """Parameters every lifecycle adapter declares besides its stage's (rsatalker_ros.ros.lifecycle_adapter)."""
    autostart: bool = param(True, "configure and activate on start (no lifecycle manager needed)")
    diagnostics_period_s: float = param(1.0, "period of the /diagnostics report", units="s", low=0.1, high=60.0)


def as_ros_value(value):
    """Tuples become lists (what rclpy and YAML take)."""
    return list(value) if isinstance(value, tuple) else value


def config_yaml(section: str, cls, header: str, skip: tuple = ()) -> str:
    """The commented ROS 2 parameter file for ``section`` (the node name) holding every default of ``cls``
    except ``skip`` (per-node values graph.py fills in)."""
    import json
    import textwrap
    lines = [f"# {line}".rstrip() for line in header.strip().splitlines()]
    lines += ["# Generated from the config dataclass (python -m rsatalker_ros.stages.write_config): edit the dataclass,",
              "# not this file, or copy it elsewhere to override values. (runtime) = may be changed with ros2 param set.",
              f"{section}:", "  ros__parameters:"]
    for s in specs(cls) + specs(LifecycleFields):
        if s.name in skip:
            continue
        limits = f" ({s.low} .. {s.high})" if s.low is not None or s.high is not None else ""
        note = s.full_description() + limits + (" (runtime)" if s.runtime else "")
        lines += textwrap.wrap(note, 116, initial_indent="    # ", subsequent_indent="    #   ")
        lines.append(f"    {s.name}: {json.dumps(as_ros_value(s.default))}")
    return "\n".join(lines) + "\n"
