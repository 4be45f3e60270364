"""A stand-in for the Prometheus Pushgateway (not in Debian) on 127.0.0.1, for tests."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator


class _StandIn(http.server.BaseHTTPRequestHandler):
    """Records every PUT as ``("PUT", path, body)`` and answers :attr:`status`."""

    received: list[tuple[str, str, str]]
    status = 200

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        self.received.append(("PUT", self.path, body))
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet: no request lines on stderr."""


@contextlib.contextmanager
def stand_in() -> Iterator[tuple[str, type[_StandIn]]]:
    """Serve a stand-in Pushgateway while the block runs.

    Yields:
        ``(url, handler)``: ``handler.received`` lists the PUTs; set ``handler.status`` to
        answer with an error.
    """
    handler = type("Handler", (_StandIn,), {"received": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
