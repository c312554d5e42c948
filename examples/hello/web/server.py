"""hello web: a page that shows what the api says; /healthz is ready only once the api answers."""

import os
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = os.environ.get("API_URL", "http://api:8080/")


def api_says() -> str:
    with urllib.request.urlopen(API, timeout=2) as response:
        return response.read().decode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        try:
            text, status = api_says(), 200
        except OSError as err:  # the api is not up (yet): not ready
            text, status = f"api unreachable: {err}", 503
        ok_probe = self.path == "/healthz" and status == 200
        body = b"ok\n" if ok_probe else f"<p>{text}</p>\n".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    print(f"web listening on :{port}, api at {API}")
    ThreadingHTTPServer(("", port), Handler).serve_forever()
