"""Headless-Chromium snapshots of a running viser viewer (docs images and browser tests).

Chromium loads a small wrapper page that frames the viewer and holds one image whose download our
HTTP server delays until a viewer client has connected and `settle` more seconds have passed (time
for the scene to arrive over the websocket and for viser's splats to finish fading in). The page's
load event waits for that image, and `chromium --screenshot` captures right after the load event.
No `--virtual-time-budget`: with software WebGL every animation frame costs real time, and a
virtual-time budget makes capture times vary from seconds to many minutes.

Needs Debian's `chromium` on PATH (set-up belongs to `make`/apt, never to this module); SwiftShader
provides WebGL.
"""

from __future__ import annotations

import http.server
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--use-gl=swiftshader", "--enable-unsafe-swiftshader",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    "--hide-scrollbars",
]


def find_chromium() -> str | None:
    """Path of the chromium executable, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _WrapperPage:
    def __init__(self, viser_server, url: str, settle: float, connect_timeout: float):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                if self.path.startswith("/hold"):
                    t0 = time.monotonic()
                    while not viser_server.get_clients() and time.monotonic() - t0 < connect_timeout:
                        time.sleep(0.05)
                    time.sleep(settle)
                    body, ctype = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "image/gif"
                else:
                    body = (f'<!doctype html><html><body style="margin:0;overflow:hidden">'
                            f'<iframe src="{url}/" style="border:0;width:100vw;height:100vh;display:block"></iframe>'
                            f'<img src="/hold" style="position:absolute;left:0;top:0;width:1px;height:1px">'
                            f'</body></html>').encode()
                    ctype = "text/html"
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def snapshot(viser_server, out: str | Path, size: tuple[int, int] = (1024, 768), settle: float = 8.0,
             timeout: float = 180.0, chromium: str | None = None) -> np.ndarray:
    """Screenshot the viewer served by `viser_server` into `out` (PNG); returns it as uint8 [H, W, 3].

    Raises RuntimeError when chromium is missing or writes no image within `timeout` seconds."""
    from PIL import Image

    from viewer.app import server_url

    exe = chromium or find_chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed (Debian: apt-get install -y chromium)")
    out = Path(out)
    out.unlink(missing_ok=True)
    page = _WrapperPage(viser_server, server_url(viser_server), settle, connect_timeout=60.0)
    try:
        with tempfile.TemporaryDirectory(prefix="worldgen-chromium-") as profile:
            cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
                   f"--screenshot={out}", page.url]
            try:
                subprocess.run(cmd, capture_output=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"chromium took more than {timeout:.0f} s") from None
            except OSError as e:
                raise RuntimeError(f"cannot run chromium ({exe}): {e}") from None
    finally:
        page.close()
    if not out.is_file():
        raise RuntimeError(f"chromium wrote no screenshot ({' '.join(cmd)})")
    return np.asarray(Image.open(out).convert("RGB"))
