"""The kiosk / telepresence page server: one HTTP + WebSocket port (``websockets``) that serves ``kiosk.html`` and
streams each participant's JPEG frames and audio, and the conversation state, all with their audio-clock stamps.
Pure Python (no rclpy): the kiosk node feeds it from ROS topics.

    server = KioskServer(KioskConfig(port=8080, participants=("alice", "bob")))
    server.start()                                         # its own asyncio thread
    server.send_image(0, stamp_ns, jpeg_bytes); server.send_audio(1, stamp_ns, 16000, int16_bytes)
    server.send_state({...}); server.stop()

The page plays each audio chunk at ``anchor + (stamp - first stamp)`` on its AudioContext, ``playout_delay_ms``
after the first chunk arrived, and shows the newest frame whose stamp is being heard (AudioContext
getOutputTimestamp), so lips and voice meet at the speaker; it measures the offset of every frame it shows.

Binary messages (little-endian): u8 kind (1 = JPEG frame, 2 = audio s16 mono), u8 participant index, u16 0,
u32 sample rate (audio; 0 for frames), f64 stamp [ms since the epoch, audio clock], payload. Text messages: JSON
``{"type": "config" | "state", ...}``.
"""

from __future__ import annotations

import asyncio
import json
import struct
import threading
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

from rsatalker_ros.stages.params import param

KIND_IMAGE, KIND_AUDIO = 1, 2
HEADER = struct.Struct("<BBHId")
PAGE = Path(__file__).with_name("kiosk.html")


#: header of config/kiosk.yaml (config_yaml(NODE_NAME, KioskConfig, CONFIG_HEADER); a test checks the file)
NODE_NAME = "kiosk"
CONFIG_HEADER = """\
kiosk: the kiosk / telepresence page (rsatalker_ros/nodes/kiosk.py), served on host:port.
    python -m rsatalker_ros.nodes.kiosk --ros-args --params-file config/kiosk.yaml"""


@dataclass(frozen=True)
class KioskConfig:
    host: str = param("127.0.0.1", "address the page is served on (loopback: this machine only; 0.0.0.0: every "
                      "network interface)")
    port: int = param(8080, "HTTP + WebSocket port of the page", low=0, high=65535)
    participants: tuple = param(("alice", "bob"), "participant ids shown left to right")
    images: str = param("raw", "which image topic to show: 'raw' (image_raw, encoded to JPEG here) or "
                        "'compressed' (the renderer's image_raw/compressed JPEG)", choices=("raw", "compressed"))
    jpeg_quality: int = param(80, "JPEG quality of frames encoded here (images 'raw')", low=1, high=100,
                              runtime=True)
    playout_delay_ms: float = param(300.0, "how long after its capture the page plays a sound and shows its frame: "
                                    "covers motion + render + transfer latency", units="ms", low=50.0, high=5000.0,
                                    runtime=True)
    max_queue: int = param(400, "messages waiting for one slow browser before its oldest frames are dropped",
                           low=16, high=100000)


def pack(kind: int, index: int, stamp_ns: int, payload: bytes, sample_rate: int = 0) -> bytes:
    """One binary message of the page's protocol."""
    return HEADER.pack(kind, index, 0, sample_rate, stamp_ns / 1e6) + payload


def unpack(data: bytes) -> tuple[int, int, int, float, bytes]:
    """(kind, participant index, sample rate, stamp [ms], payload); ValueError for a message too short."""
    if len(data) < HEADER.size:
        raise ValueError(f"kiosk message of {len(data)} bytes; expected at least {HEADER.size}")
    kind, index, _, rate, stamp_ms = HEADER.unpack_from(data)
    return kind, index, rate, stamp_ms, data[HEADER.size:]


class _Client:
    def __init__(self, ws, max_queue: int):
        self.ws, self.max_queue = ws, max_queue
        self.queue: list = []            # (droppable, message)
        self.ready = asyncio.Event()
        self.dropped = 0

    def put(self, message, droppable: bool) -> None:
        if len(self.queue) >= self.max_queue:
            for i, (can_drop, _) in enumerate(self.queue):
                if can_drop:
                    del self.queue[i]
                    self.dropped += 1
                    break
            else:
                self.queue.pop(0)
                self.dropped += 1
        self.queue.append((droppable, message))
        self.ready.set()


class KioskServer:
    def __init__(self, config: KioskConfig):
        self.config = config
        self.page = PAGE.read_bytes()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._clients: set[_Client] = set()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self.port = 0
        self.sent = {"frames": 0, "audio": 0, "states": 0}
        self.last_state: str | None = None       # the newest state (JSON), for pages that connect later

    # ---- lifecycle ------------------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name="kiosk_server", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise OSError("the kiosk server did not start")
        if self._error is not None:
            raise OSError(f"cannot serve the kiosk page on {self.config.host}:{self.config.port}: {self._error}")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._thread = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host
        return f"http://{host}:{self.port}/"

    @property
    def clients(self) -> int:
        return len(self._clients)

    @property
    def dropped(self) -> int:
        return sum(c.dropped for c in self._clients)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as err:  # noqa: BLE001 - reported to start()
            self._error = err
            self._started.set()

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._handler, self.config.host, self.config.port, process_request=self._http,
                         max_size=1 << 16, compression=None) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._started.set()
            await self._stop.wait()

    def _http(self, connection, request):
        if request.path == "/ws":
            return None                                  # the WebSocket upgrade
        if request.path not in ("/", "/index.html"):
            return connection.respond(HTTPStatus.NOT_FOUND, "not found: the kiosk page is at /\n")
        response = connection.respond(HTTPStatus.OK, "")
        response.body = self.page
        for key, value in (("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(self.page))),
                           ("Cache-Control", "no-store")):
            if key in response.headers:         # a multi-dict: replace, never add a second header
                del response.headers[key]
            response.headers[key] = value
        return response

    async def _handler(self, ws) -> None:
        client = _Client(ws, self.config.max_queue)
        # queued in the loop's thread with no await in between: every later message comes after these, once
        client.put(json.dumps(self.page_config()), droppable=False)
        if self.last_state is not None:
            client.put(self.last_state, droppable=True)
        self._clients.add(client)
        try:
            while True:
                await client.ready.wait()
                client.ready.clear()
                while client.queue:
                    _, message = client.queue.pop(0)
                    await ws.send(message)
        except Exception:  # noqa: BLE001 - the browser went away: forget it
            pass
        finally:
            self._clients.discard(client)

    # ---- what the node calls (any thread) -------------------------------------------------------------------
    def page_config(self) -> dict:
        return {"type": "config", "participants": list(self.config.participants),
                "playout_delay_ms": self.config.playout_delay_ms}

    def set_config(self, config: KioskConfig) -> None:
        """A runtime change (playout delay, JPEG quality): pages get the new config."""
        self.config = config
        self._broadcast(json.dumps(self.page_config()), droppable=False)

    def _broadcast(self, message, droppable: bool, is_state: bool = False) -> None:
        loop = self._loop
        if loop is None:
            return

        def fan_out():                       # in the loop's thread, so a new page gets each state once
            if is_state:
                self.last_state = message
            for c in list(self._clients):
                c.put(message, droppable)
        loop.call_soon_threadsafe(fan_out)

    def send_image(self, index: int, stamp_ns: int, jpeg: bytes) -> None:
        self.sent["frames"] += 1
        self._broadcast(pack(KIND_IMAGE, index, stamp_ns, jpeg), droppable=True)

    def send_audio(self, index: int, stamp_ns: int, sample_rate: int, s16: bytes) -> None:
        self.sent["audio"] += 1
        self._broadcast(pack(KIND_AUDIO, index, stamp_ns, s16, sample_rate), droppable=False)

    def send_state(self, state: dict) -> None:
        """state: {"stamp_ms", "active_speaker", "activity", "speaking": {pid: p}, "relation": {...}}."""
        self.sent["states"] += 1
        self._broadcast(json.dumps(dict(state, type="state")), droppable=True, is_state=True)
