"""Serve the stand-ins built by benchmarks/standins/build.py on 127.0.0.1 and write
the manifests the pipeline reads (`PSEUDOSUP_STANDINS=<out>/manifests`).

    python benchmarks/standins/serve.py [--out /work/standins] [--http-port 8765] [--ftp-port 2121]

TEXMEX archives (sift-1m, gist-1m) go over anonymous FTP like the real ones
(ftp://ftp.irisa.fr/local/texmex/corpus/), everything else over HTTP with Range
requests (so the download code's resume is exercised as on the real servers). Runs
until interrupted; a request log goes to <out>/serve.log.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FTP_DATASETS = {"sift-1m", "gist-1m"}


def http_handler(root: Path, log: logging.Logger):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            log.info("http %s", fmt % args)

        def do_GET(self):
            path = (root / self.path.lstrip("/")).resolve()
            if root not in path.parents or not path.is_file():
                self.send_error(404)
                return
            size = path.stat().st_size
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if match and int(match.group(1)) < size:
                start = int(match.group(1))
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(size - start))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            with open(path, "rb") as f:
                f.seek(start)
                shutil.copyfileobj(f, self.wfile, 1 << 20)

    return Handler


def ftp_server(root: Path, port: int):
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import ThreadedFTPServer

    authorizer = DummyAuthorizer()
    authorizer.add_anonymous(str(root))
    handler = type("Handler", (FTPHandler,), {})
    handler.authorizer = authorizer
    return ThreadedFTPServer(("127.0.0.1", port), handler)


def write_manifests(out: Path, http_port: int, ftp_port: int) -> list[str]:
    """<out>/manifests/<dataset>.json for every built stand-in, with its URLs."""
    dest = out / "manifests"
    dest.mkdir(parents=True, exist_ok=True)
    names = []
    for built in sorted((out / "built").glob("*.json")):
        doc = json.loads(built.read_text())
        name = doc["dataset"]
        base = (f"ftp://127.0.0.1:{ftp_port}" if name in FTP_DATASETS else f"http://127.0.0.1:{http_port}")
        doc["files"] = {f: {"url": f"{base}/{name}/{f}", "sha256": e["sha256"], "size": e["size"]}
                        for f, e in doc["files"].items()}
        doc.pop("build_seconds", None)
        tmp = dest / f".{name}.json.part"
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, dest / f"{name}.json")
        names.append(name)
    return names


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/work/standins"))
    ap.add_argument("--http-port", type=int, default=8765)
    ap.add_argument("--ftp-port", type=int, default=2121)
    args = ap.parse_args(argv)
    root = (args.out / "files").resolve()
    logging.basicConfig(filename=args.out / "serve.log", level=logging.INFO, format="%(asctime)s %(message)s")
    log = logging.getLogger("standins")
    names = write_manifests(args.out, args.http_port, args.ftp_port)
    if not names:
        raise SystemExit(f"nothing built in {args.out / 'built'}: run benchmarks/standins/build.py first")
    httpd = ThreadingHTTPServer(("127.0.0.1", args.http_port), http_handler(root, log))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    print(f"serving {', '.join(names)} from {root}\n  export PSEUDOSUP_STANDINS={args.out / 'manifests'}", flush=True)
    ftp_server(root, args.ftp_port).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
