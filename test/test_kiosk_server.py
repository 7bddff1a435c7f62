"""The kiosk page server without ROS: it serves the page, speaks its binary protocol over a real WebSocket, and a
slow browser loses frames, never audio."""

import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from rsatalker_ros.display.kiosk import KIND_AUDIO, KIND_IMAGE, KioskConfig, KioskServer, _Client, pack, unpack


@pytest.fixture()
def server():
    s = KioskServer(KioskConfig(port=0, participants=("alice", "bob"), playout_delay_ms=250.0))
    s.start()
    yield s
    s.stop()


def test_page_and_stream(server):
    from websockets.sync.client import connect
    with urllib.request.urlopen(server.url, timeout=10) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
        page = r.read().decode()
    assert "getOutputTimestamp" in page and "kioskStats" in page
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(server.url + "other", timeout=10)
    assert err.value.code == 404
    with connect(server.url.replace("http", "ws") + "ws") as ws:
        assert json.loads(ws.recv(timeout=10)) == {"type": "config", "participants": ["alice", "bob"],
                                                   "playout_delay_ms": 250.0}
        pcm = (np.sin(np.arange(320) / 5.0) * 8000).astype("<i2").tobytes()
        server.send_state({"stamp_ms": 1.5, "active_speaker": "bob", "speaking": {"bob": 0.9}})
        server.send_audio(1, 1_700_000_000_123_456_789, 16000, pcm)
        server.send_image(0, 1_700_000_000_160_000_000, b"\xff\xd8jpeg")
        state = json.loads(ws.recv(timeout=10))
        assert state["type"] == "state" and state["active_speaker"] == "bob"
        kind, idx, rate, stamp_ms, payload = unpack(ws.recv(timeout=10))
        assert (kind, idx, rate, payload) == (KIND_AUDIO, 1, 16000, pcm)
        assert stamp_ms == pytest.approx(1_700_000_000_123.456789, abs=1e-3)
        kind, idx, rate, stamp_ms, payload = unpack(ws.recv(timeout=10))
        assert (kind, idx, payload) == (KIND_IMAGE, 0, b"\xff\xd8jpeg") and stamp_ms == 1_700_000_000_160.0
    with connect(server.url.replace("http", "ws") + "ws") as late:      # a page that connects later
        assert json.loads(late.recv(timeout=10))["type"] == "config"
        assert json.loads(late.recv(timeout=10))["active_speaker"] == "bob"  # gets who is speaking at once
    with pytest.raises(ValueError, match="at least"):
        unpack(b"\x01\x00")


def test_a_slow_browser_loses_frames_not_audio():
    c = _Client(ws=None, max_queue=16)
    for i in range(10):
        c.put(pack(KIND_AUDIO, 0, i, b"a"), droppable=False)
        c.put(pack(KIND_IMAGE, 0, i, b"i"), droppable=True)
    kinds = [unpack(m)[0] for _, m in c.queue]
    assert len(kinds) == 16 and kinds.count(KIND_AUDIO) == 10 and c.dropped == 4
    # the frames kept are the newest
    assert [unpack(m)[3] for _, m in c.queue if unpack(m)[0] == KIND_IMAGE] == [i / 1e6 for i in range(4, 10)]


@pytest.mark.parametrize("module", ["rsatalker_ros.display.kiosk", "rsatalker_ros.display.foxglove_stage"])
def test_config_files_match_the_config_dataclasses(module):
    """config/kiosk.yaml and config/foxglove_bridge.yaml hold every default of the config dataclass with its
    description (the dataclass is the one source: change a field, rewrite the file with config_yaml)."""
    import dataclasses
    import importlib
    from pathlib import Path

    from rsatalker_ros.stages.params import config_yaml
    m = importlib.import_module(module)
    cls = next(v for v in vars(m).values() if dataclasses.is_dataclass(v) and v.__name__.endswith("Config"))
    path = Path(__file__).resolve().parents[1] / "config" / f"{m.NODE_NAME}.yaml"
    assert path.read_text() == config_yaml(m.NODE_NAME, cls, m.CONFIG_HEADER), \
        f"{path} differs from {cls.__name__}: write config_yaml({m.NODE_NAME!r}, {cls.__name__}, CONFIG_HEADER) to it"
