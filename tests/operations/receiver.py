"""A real HTTP server on 127.0.0.1 that takes webhook deliveries (JSON or Slack-style).

``fail_next(n)`` answers the next n posts with HTTP 500; ``hang()`` holds every
post open until ``release()``. ``posts`` lists what arrived (path, headers, JSON body).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.attempts = 0
        self._fail = 0
        self._hold = threading.Event()
        self._hold.set()
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                outer._hold.wait(30)
                with outer._lock:
                    outer.attempts += 1
                    failing = outer._fail > 0
                    if failing:
                        outer._fail -= 1
                    else:
                        headers = {k.lower(): v for k, v in self.headers.items()}
                        outer.posts.append({"path": self.path, "headers": headers, "json": json.loads(body or b"null")})
                self.send_response(500 if failing else 200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._hold.set()
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, n: int) -> None:
        with self._lock:
            self._fail = n

    def hang(self) -> None:
        self._hold.clear()

    def release(self) -> None:
        self._hold.set()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.posts) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.posts)
