"""A stand-in for the release download sites, on 127.0.0.1, for `pyci install-tools` and the host action.

FAKE, and named so: github.com, dl.k8s.io and get.helm.sh cannot be reached here. The server serves a
folder laid out as PYCI_DOWNLOAD_BASE expects (BASE/<host>/<path>, i.e. the URL without https://),
records every path asked for, and can hold a response halfway (to look at the target folder while a
download is in flight). `mirror()` lays such a folder out from binaries the lab has, in the release
files' own shapes (kind and kubectl bare, tilt and helm in .tar.gz), and writes a versions.env whose
digests are computed from those files: for the tests only, never the product's pins.
"""

from __future__ import annotations

import hashlib
import http.server
import tarfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pyci import install


@dataclass
class Server:
    root: Path
    port: int = 0
    requests: list[str] = field(default_factory=list)
    hold: dict[str, threading.Event] = field(default_factory=dict)  # path -> released when set
    holding: threading.Event = field(default_factory=threading.Event)  # a held response is waiting

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _handler(server: Server) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            path = self.path.split("?", 1)[0]
            server.requests.append(path)
            file = (server.root / path.lstrip("/")).resolve()
            if not file.is_relative_to(server.root.resolve()) or not file.is_file():
                self.send_error(404)
                return
            data = file.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            release = server.hold.get(path)
            if release is not None:
                half = len(data) // 2
                self.wfile.write(data[:half])
                self.wfile.flush()
                server.holding.set()
                release.wait(30)
                data = data[half:]
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
            pass

    return Handler


@contextmanager
def serve(root: Path) -> Iterator[Server]:
    server = Server(root=root)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, name="pyci-download-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        for event in server.hold.values():
            event.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def url_path(tool: str, versions: Mapping[str, str], arch: str = "amd64") -> str:
    """The path under the server's root for a tool's release file: its URL without https://."""
    any_digest = {**versions, f"{tool.upper()}_SHA256_{arch.upper()}": "0" * 64}
    p = install.pin(install.TOOLS_BY_NAME[tool], any_digest, install.ARCHES[arch], {})
    return p.url.removeprefix("https://")


def mirror(root: Path, binaries: Mapping[str, Path], versions: Mapping[str, str],
           arch: str = "amd64") -> dict[str, str]:
    """Lay out `binaries` (tool -> file) under `root` as the release files; return `versions` with
    each laid-out tool's SHA256 for `arch` computed from what was written."""
    pinned = dict(versions)
    for tool, binary in binaries.items():
        spec = install.TOOLS_BY_NAME[tool]
        dest = root / url_path(tool, versions, arch)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if spec.member is None:
            dest.write_bytes(binary.read_bytes())
        else:
            member = spec.member.format(arch=arch)
            with tarfile.open(dest, "w:gz", compresslevel=1) as tar:
                tar.add(binary, arcname=member)
        pinned[f"{tool.upper()}_SHA256_{arch.upper()}"] = sha256(dest)
    return pinned


def versions_env(values: Mapping[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())
