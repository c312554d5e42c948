"""hello api: answers GET / with a JSON greeting and /healthz with ok (standard library only)."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        if self.path == "/healthz":
            body, kind = b"ok\n", "text/plain"
        else:
            body, kind = json.dumps({"message": "hello from api"}).encode() + b"\n", "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    print(f"api listening on :{port}")
    ThreadingHTTPServer(("", port), Handler).serve_forever()
