"""A directory served over HTTP on 127.0.0.1 from a thread: the pages browsers visit in tests and
benchmarks."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a browser killed mid-request (a released session) is expected, not worth a traceback


@contextlib.contextmanager
def serving(directory: Path, quiet_errors: bool = False) -> Iterator[str]:
    """Serve `directory` on 127.0.0.1 (a free port) until the block ends; yields the base URL.
    `quiet_errors`: say nothing of requests that broke off (else the standard traceback on stderr)."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    server_class = _QuietServer if quiet_errors else http.server.ThreadingHTTPServer
    httpd = server_class(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
