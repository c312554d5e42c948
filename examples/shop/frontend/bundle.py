"""Build step of the frontend image: "bundle" the assets, i.e. render the stylesheet and page shell
and compress them hard, fingerprinted by content (deliberate CPU work, about 3 s of one core)."""

import gzip
import hashlib
import json
import sys
from pathlib import Path


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    css = "".join(f".p{n} {{ color: #{n * 2654435761 % 0xFFFFFF:06x}; margin: {n % 13}px; }}\n"
                  for n in range(4000))
    shell = "<!doctype html><title>shop</title><link rel=stylesheet href=/static/app.css><main>{}</main>"
    manifest = {}
    for name, text in (("app.css", css), ("shell.html", shell)):
        data = text.encode()
        # Content fingerprint, stretched to stand in for a bundler's minify + tree-shake passes.
        fingerprint = hashlib.pbkdf2_hmac("sha256", data, b"shop-assets", 3_000_000).hex()[:12]
        (out / name).write_bytes(data)
        (out / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=9))
        manifest[name] = fingerprint
    (out / "manifest.json").write_text(json.dumps(manifest))
    print(f"frontend: bundled {sorted(manifest)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
