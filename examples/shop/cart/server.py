"""shop cart: GET /cart answers a sample cart with its total; /healthz is ok once the db answers."""

import json
import os
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pricing import total_cents

DB = os.environ.get("DB_URL", "http://db:5432/")
SAMPLE = [(250, 2), (99, 1)]


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
            status, body = 200, json.dumps({"lines": SAMPLE, "total_cents": total_cents(SAMPLE)}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    print(f"cart listening on :{port}, db at {DB}")
    ThreadingHTTPServer(("", port), Handler).serve_forever()
