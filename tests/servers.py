"""Local HTTP and FTP servers for download tests (127.0.0.1, ephemeral ports).

Both serve files the test puts in them and follow a script of faults per file,
consumed one per request:
- HTTP: "500" (an Internal Server Error), ("cut", n) (promise the whole body, send
  n bytes, drop the connection), "ignore-range" (answer 200 with the whole file to
  a Range request), "404";
- FTP: ("cut", n) (the data connection ends after n bytes of this RETR).
Every request is logged so tests can assert what went over the wire (Range / REST
offsets, or that nothing did).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class HTTPFileServer:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, list] = defaultdict(list)
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "HTTPFileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def add(self, name: str, data: bytes | Path) -> str:
        self.files[name] = data.read_bytes() if isinstance(data, Path) else data
        return self.url(name)

    def _next_fault(self, name: str):
        with self._lock:
            return self.faults[name].pop(0) if self.faults[name] else None

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: a cut is a closed socket

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                rng = self.headers.get("Range")
                fault = server._next_fault(name)
                server.requests.append({"path": name, "range": rng, "fault": fault})
                data = server.files.get(name)
                if data is None or fault == "404":
                    self.send_error(404)
                    return
                if fault == "500":
                    self.send_error(500, "scripted failure")
                    return
                start = 0
                if rng and fault != "ignore-range":
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if isinstance(fault, tuple) and fault[0] == "cut":
                    self.wfile.write(body[:fault[1]])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        return Handler


class FTPFileServer:
    """An anonymous, read-only pyftpdlib server over a directory."""

    def __init__(self, root: Path):
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.filesystems import AbstractedFS
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.servers import ThreadedFTPServer

        quiet = logging.getLogger("pyftpdlib")
        quiet.setLevel(logging.WARNING)
        if not quiet.handlers:  # else serve_forever installs its own INFO handler
            quiet.addHandler(logging.NullHandler())
        self.root = Path(root)
        self.faults: dict[str, list] = defaultdict(list)
        self.requests: list[dict] = []
        self.rests: list[int] = []  # offsets of REST commands (resumed transfers)
        server = self

        class ScriptedFS(AbstractedFS):
            def open(self, filename, mode):
                f = super().open(filename, mode)
                name = Path(filename).name
                fault = server.faults[name].pop(0) if server.faults[name] else None
                server.requests.append({"path": name, "fault": fault})
                return _Truncated(f, fault[1]) if fault and fault[0] == "cut" else f

        authorizer = DummyAuthorizer()
        authorizer.add_anonymous(str(self.root))
        def ftp_REST(handler_self, line):
            server.rests.append(int(line))
            return FTPHandler.ftp_REST(handler_self, line)

        handler = type("Handler", (FTPHandler,), {"ftp_REST": ftp_REST})
        handler.authorizer = authorizer
        handler.abstracted_fs = ScriptedFS
        handler.use_sendfile = False  # reads go through our file object (cuts)
        handler.passive_ports = None
        self.server = ThreadedFTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"timeout": 0.05}, daemon=True)

    def __enter__(self) -> "FTPFileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.close_all()

    def url(self, name: str) -> str:
        return f"ftp://127.0.0.1:{self.server.address[1]}/{name}"

    def add(self, name: str, data: bytes | Path) -> str:
        (self.root / name).write_bytes(data.read_bytes() if isinstance(data, Path) else data)
        return self.url(name)


class _Truncated:
    """A file object that ends after `limit` bytes from where the transfer starts
    (the server then closes the data connection as if the transfer were cut)."""

    def __init__(self, f, limit: int):
        self.f, self.left = f, limit
        self.name, self.closed = f.name, False

    def seek(self, *a):
        return self.f.seek(*a)

    def tell(self):
        return self.f.tell()

    def read(self, n=-1):
        if self.left <= 0:
            return b""
        data = self.f.read(self.left if n is None or n < 0 else min(n, self.left))
        self.left -= len(data)
        return data

    def close(self):
        self.closed = True
        self.f.close()
