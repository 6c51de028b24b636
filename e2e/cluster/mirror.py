"""A models mirror, as an air-gapped site would run one: a folder served
over HTTP at the upstream paths (huggingface.co/<repo>/resolve/<rev>/<file>
becomes <mirror>/<repo>/resolve/<rev>/<file>), with byte ranges (the
loader resumes). For the tests, GET /_mirror/requests gives how many
times each path was fetched, and POST /_mirror/down?seconds=N answers
every file with 503 for N seconds (a mirror that is down at first), and
POST /_mirror/slow?bytes_per_second=N sends bodies at most that fast (0:
at full speed), so that a download can be caught half way.

    python3 mirror.py serve ROOT HOST PORT
    python3 mirror.py populate ROOT CATALOG FILE...

`populate` links into ROOT, at its upstream path, every catalog file that
one of FILE is byte for byte (same name, size and publisher's digest): the
catalog entries this machine can make from the registries it reaches.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 1 << 20


class Mirror(BaseHTTPRequestHandler):
    root = "."
    counts: dict[str, int] = {}
    down_until = 0.0
    bytes_per_second = 0
    lock = threading.Lock()

    def log_message(self, fmt, *args):  # one line per request, to the log file
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/_mirror/down":
            seconds = float(query.get("seconds", ["0"])[0])
            Mirror.down_until = time.monotonic() + seconds
            self._send_json({"down_for": seconds})
        elif url.path == "/_mirror/slow":
            Mirror.bytes_per_second = int(query.get("bytes_per_second", ["0"])[0])
            self._send_json({"bytes_per_second": Mirror.bytes_per_second})
        else:
            self.send_error(404)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/_mirror/requests":
            with Mirror.lock:
                self._send_json(dict(Mirror.counts))
            return
        rel = urllib.parse.unquote(url.path).lstrip("/")
        path = os.path.realpath(os.path.join(Mirror.root, rel))
        # Only what the mirror folder holds (its entries may be links).
        if ".." in rel.split("/") or not os.path.isfile(path):
            self.send_error(404)
            return
        with Mirror.lock:
            Mirror.counts[rel] = Mirror.counts.get(rel, 0) + 1
        if time.monotonic() < Mirror.down_until:
            self.send_error(503, "the mirror is down")
            return
        size = os.path.getsize(path)
        start = 0
        ranged = self.headers.get("Range", "")
        # Only the open range the loader asks for (bytes=N-); any other form
        # gets the whole file, which a client must accept.
        spec = ranged[len("bytes="):] if ranged.startswith("bytes=") else ""
        if spec.endswith("-") and spec[:-1].isdigit():
            start = int(spec[:-1])
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(size - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        with open(path, "rb") as f:
            f.seek(start)
            while chunk := f.read(CHUNK // 8):
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return
                if Mirror.bytes_per_second:
                    time.sleep(len(chunk) / Mirror.bytes_per_second)

    def _send_json(self, value):
        body = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def digest_of(path: str, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def populate(root: str, catalog_path: str, candidates: list[str]) -> None:
    with open(catalog_path) as f:
        catalog = json.load(f)
    by_name: dict[str, list[str]] = {}
    for c in candidates:
        by_name.setdefault(os.path.basename(c), []).append(os.path.realpath(c))
    for model in catalog["models"]:
        for file in model["files"]:
            name = file["url"].rsplit("/", 1)[-1]
            algorithm, want = file["digest"].split(":", 1)
            match = next((c for c in by_name.get(name, [])
                          if os.path.getsize(c) == file["size"] and digest_of(c, algorithm) == want), None)
            if match is None:
                continue
            rel = urllib.parse.urlsplit(file["url"]).path.lstrip("/")
            target = os.path.join(root, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.lexists(target):
                os.remove(target)
            os.symlink(match, target)
            sys.stderr.write(f"mirror: {model['name']}: {rel}\n")


def main() -> None:
    if sys.argv[1] == "populate":
        populate(sys.argv[2], sys.argv[3], sys.argv[4:])
        return
    root, host, port = sys.argv[2], sys.argv[3], int(sys.argv[4])
    Mirror.root = os.path.realpath(root)
    server = ThreadingHTTPServer((host, port), Mirror)
    server.daemon_threads = True
    sys.stderr.write(f"mirror of {Mirror.root} on http://{host}:{port}\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
