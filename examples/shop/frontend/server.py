"""shop frontend: a page showing the catalog and the cart; /healthz is ready only once both answer."""

import json
import os
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CATALOG = os.environ.get("CATALOG_URL", "http://catalog:8080/products")
CART = os.environ.get("CART_URL", "http://cart:8080/cart")
STATIC = Path(__file__).parent / "static"
SHELL = (STATIC / "shell.html").read_text()


def fetch(url: str) -> Any:  # JSON: a list from the catalog, an object from the cart
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        if self.path.startswith("/static/") and (STATIC / self.path[len("/static/"):]).is_file():
            status, body = 200, (STATIC / self.path[len("/static/"):]).read_bytes()
        else:
            try:
                products, cart = fetch(CATALOG), fetch(CART)
                status = 200
                page = f"<p>{len(products)} products, cart total {cart['total_cents']} cents</p>"
            except (OSError, ValueError) as err:  # a backend is not up (yet): not ready
                status, page = 503, f"<p>backend unreachable: {err}</p>"
            body = b"ok\n" if self.path == "/healthz" and status == 200 else SHELL.format(page).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    print(f"frontend listening on :{port}, catalog at {CATALOG}, cart at {CART}")
    ThreadingHTTPServer(("", port), Handler).serve_forever()
