"""A real headless Chromium driven over the DevTools protocol (a WebSocket; ``websockets``' sync client): load a
page, evaluate JavaScript, take a screenshot. Debian's ``chromium`` (scripts/bootstrap.sh installs it)."""

import base64
import itertools
import json
import os
import signal
import shutil
import subprocess
import tempfile
import time
import urllib.request


def chromium_binary():
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    def __init__(self, width: int = 1000, height: int = 640):
        from websockets.sync.client import connect
        self.dir = tempfile.TemporaryDirectory(prefix="rsatalker_chromium_", ignore_cleanup_errors=True)
        # no sound card here: Chromium falls back to its fake audio output, whose clock drives AudioContext
        # time like a real device; autoplay allowed so the page's AudioContext runs without a click
        self.proc = subprocess.Popen(
            [chromium_binary(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={self.dir.name}",
             "--remote-debugging-port=0", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.ws = None
        try:
            port_file = os.path.join(self.dir.name, "DevToolsActivePort")
            deadline = time.monotonic() + 60
            while not os.path.exists(port_file) or not open(port_file).read().strip():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("chromium did not start its DevTools endpoint")
                time.sleep(0.05)
            port = int(open(port_file).read().split()[0])
            pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
            page = next(p for p in pages if p["type"] == "page")
            self.ws = connect(page["webSocketDebuggerUrl"], max_size=64 << 20)
            self.ids = itertools.count(1)
            self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                      mobile=False)
        except BaseException:
            self.close()                      # never leave a browser behind
            raise

    def call(self, method: str, **params) -> dict:
        i = next(self.ids)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            m = json.loads(self.ws.recv(timeout=60))
            if m.get("id") == i:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0, poll: float = 0.2):
        """Evaluate until the value is truthy; returns it (None on timeout)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = self.evaluate(expression)
            if v:
                return v
            time.sleep(poll)
        return None

    def screenshot(self, path: str) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self) -> None:
        try:
            if self.ws is not None:
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            # its helper processes (renderer, crashpad, ...) can outlive the browser and still write to the profile
            # folder: end the whole session it started before removing that folder
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.dir.cleanup()
