"""Stage configs without ROS: parameter specs from dataclass fields, value checks that name what was wrong, runtime
vs read-only changes, cross-field rules; and the health checks the nodes report on /diagnostics."""

from dataclasses import dataclass

import pytest

from rsatalker_ros.stages import health, params
from rsatalker_ros.stages.params import param


@dataclass(frozen=True)
class DemoConfig:
    width: int = param(512, "image width", units="px", low=16, high=4096)
    quality: int = param(85, "JPEG quality", low=1, high=100, runtime=True)
    backend: str = param("auto", "rasteriser", choices=("auto", "cpu"))
    gain: float = param(1.0, "gain", low=0.0, high=2.0, runtime=True)
    names: tuple = param(("alice", "bob"), "participants")
    offset: tuple = param((0.0, 0.0), "offset", units="m", low=-1.0, high=1.0)

    def __post_init__(self):
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"names must be distinct, got {list(self.names)}")


def test_specs_come_from_the_fields_with_their_metadata():
    s = {p.name: p for p in params.specs(DemoConfig)}
    assert list(s) == ["width", "quality", "backend", "gain", "names", "offset"]
    assert s["width"].full_description() == "image width [px]" and not s["width"].runtime
    assert s["quality"].runtime and s["quality"].kind is int and s["offset"].kind is float
    assert "one of: auto, cpu" in s["backend"].full_description()
    assert "read-only" in s["width"].constraints() and "16 .. 4096" in s["width"].constraints()


@pytest.mark.parametrize("values, words", [
    ({"width": 8}, ["width", "8", "16 .. 4096"]),
    ({"width": 1.5}, ["width", "integer"]),
    ({"backend": "vulkan"}, ["backend", "'auto'", "'cpu'"]),
    ({"gain": float("nan")}, ["gain", "finite"]),
    ({"names": "alice"}, ["names", "list of str"]),
    ({"offset": [0.0, 3.0]}, ["offset", "-1.0 .. 1.0"]),
    ({"names": ["a", "a"]}, ["distinct"]),
    ({"colour": 1}, ["unknown", "colour"]),
])
def test_bad_values_are_refused_naming_the_parameter_and_the_expectation(values, words):
    with pytest.raises(ValueError) as err:
        params.build(DemoConfig, values)
    for w in words:
        assert w in str(err.value), str(err.value)


def test_build_converts_and_fills_defaults_and_update_allows_only_runtime_fields():
    cfg = params.build(DemoConfig, {"gain": 2, "names": ["x", "y", "z"]})
    assert cfg.gain == 2.0 and isinstance(cfg.gain, float) and cfg.names == ("x", "y", "z") and cfg.width == 512
    new = params.update(cfg, {"quality": 40})
    assert new.quality == 40 and cfg.quality == 85          # a new config; the old one is unchanged
    with pytest.raises(ValueError, match="read-only"):
        params.update(cfg, {"width": 256})
    with pytest.raises(ValueError, match="1 .. 100"):
        params.update(cfg, {"quality": 500})


def test_config_yaml_lists_every_default_with_its_description():
    import yaml
    text = params.config_yaml("demo", DemoConfig, "a demo node", skip=("names",))
    doc = yaml.safe_load(text)["demo"]["ros__parameters"]
    assert doc == {"width": 512, "quality": 85, "backend": "auto", "gain": 1.0, "offset": [0.0, 0.0],
                   "autostart": True, "diagnostics_period_s": 1.0}
    assert "# image width [px] (16 .. 4096)" in text and "JPEG quality (1 .. 100) (runtime)" in text


def test_rate_and_latency_checks_warn_and_error_against_their_targets():
    rate = health.RateCheck("images_per_s", 25.0)
    st = health.Status("")
    rate.check(st, now_s=0.0)
    assert st.level == health.OK                              # the first window only starts
    rate.tick(24)
    st = health.Status("")
    rate.check(st, now_s=1.0)
    assert st.level == health.OK and st.values["images_per_s"] == 24.0
    rate.tick(5)
    st = health.Status("")
    rate.check(st, now_s=2.0)
    assert st.level == health.WARN and "below target 25" in st.message
    st = health.Status("")
    rate.check(st, now_s=3.0)
    assert st.level == health.ERROR
    lat = health.LatencyCheck("latency_ms", 100.0)
    for ms in [50.0] * 90 + [150.0] * 10:
        lat.add(ms)
    st = health.Status("")
    lat.check(st)
    assert st.level == health.WARN and st.values["latency_ms_p95"] == 150.0
    for ms in [250.0] * 10:
        lat.add(ms)
    st = health.Status("")
    lat.check(st)
    assert st.level == health.ERROR


def test_drops_and_rejections_are_counted_by_cause_and_warn_only_when_new():
    logged = []
    rej = health.Rejections(logged.append)
    for _ in range(5):
        rej("AudioFrame", ValueError("sample_rate is 44100; expected 16000"))
    rej("SocialRelation", "kinship 7")
    assert rej.counts == {"AudioFrame": 5, "SocialRelation": 1} and len(logged) == 2   # one log per cause
    st = health.Status("")
    rej.check(st)
    assert st.level == health.WARN and st.values["rejected: AudioFrame"] == 5 and st.values["rejected_inputs"] == 6
    st = health.Status("")
    rej.check(st)
    assert st.level == health.OK and st.values["rejected_inputs"] == 6             # totals stay, no new ones
    drops = health.Drops(warn_fraction=0.1)
    st = health.Status("")
    drops.check(st, 100, {"stale": 2, "overflow": 0})
    assert st.level == health.OK
    st = health.Status("")
    drops.check(st, 200, {"stale": 30, "overflow": 1})
    assert st.level == health.WARN and "28 stale" in st.message and st.values["dropped_stale"] == 30


def test_shipped_config_files_are_generated_from_the_dataclasses():
    from rsatalker_ros.stages import write_config
    assert write_config.main(["--check"]) == 0, "config/*.yaml differ from the dataclasses: run write_config"


@pytest.mark.parametrize("processes", ["separate", "single"])
def test_every_node_of_the_described_graph_gets_valid_parameters(processes):
    """graph.py's parameters (config/*.yaml + graph.yaml + arguments) build every node's config: nothing unknown,
    nothing out of range."""
    from rsatalker_ros.ros import graph
    from rsatalker_ros.stages.write_config import SECTIONS
    node_fields = {s.name for s in params.specs(params.LifecycleFields)}
    specs = graph.describe(source="wav", kinship="blood", hierarchy="unequal", senior="alice", processes=processes)
    assert {s.executable for s in specs} == set(SECTIONS)
    for s in specs:
        cfg = params.build(SECTIONS[s.executable][0], {k: v for k, v in s.parameters.items() if k not in node_fields})
        if s.executable == "motion":
            assert cfg.relation_senior == "alice" and cfg.relation_hierarchy == "unequal"


def test_wav_files_given_by_the_user_are_relative_to_the_current_directory(tmp_path, monkeypatch):
    from rsatalker_ros.ros import graph
    monkeypatch.chdir(tmp_path)
    specs = graph.describe(source="wav", wav_files=["a.wav", "sub/b.wav"])
    audio = next(s for s in specs if s.executable == "audio_capture")
    assert audio.parameters["wav_files"] == [str(tmp_path / "a.wav"), str(tmp_path / "sub" / "b.wav")]
    shipped = graph.describe(source="wav")                # graph.yaml's own files stay package-relative
    files = next(s for s in shipped if s.executable == "audio_capture").parameters["wav_files"]
    assert all(f.startswith(str(graph.PACKAGE_DIR)) for f in files)
