"""shop catalog: GET /products lists the catalog the image build precomputed; /healthz is ok once the
db answers (standard library only)."""

import json
import os
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CATALOG = json.loads((Path(__file__).parent / "catalog.json").read_text())
DB = os.environ.get("DB_URL", "http://db:5432/")


def db_answers() -> bool:
    try:
        with urllib.request.urlopen(DB, timeout=2):
            return True
    except OSError:
        return False


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        if self.path == "/healthz":
            status, body = (200, b"ok\n") if db_answers() else (503, b"db unreachable\n")
        else:
            status, body = 200, json.dumps(CATALOG[:20]).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    print(f"catalog listening on :{port}, {len(CATALOG)} products, db at {DB}")
    ThreadingHTTPServer(("", port), Handler).serve_forever()
