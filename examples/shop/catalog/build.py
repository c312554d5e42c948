"""Build step of the catalog image: precompute every product's record (deliberate CPU work, a few
seconds, standing in for the dependency or asset build of a real service)."""

import hashlib
import json
import sys
from pathlib import Path

PRODUCTS = 240
ROUNDS = 25_000  # PBKDF2 rounds per product: ~6M in all, about 3 s of one core


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    catalog = []
    for n in range(PRODUCTS):
        sku = f"sku-{n:04d}"
        digest = hashlib.pbkdf2_hmac("sha256", sku.encode(), b"shop-catalog", ROUNDS).hex()
        catalog.append({"sku": sku, "name": f"Product {n}", "price_cents": 100 + n * 7, "etag": digest[:16]})
    (out / "catalog.json").write_text(json.dumps(catalog))
    print(f"catalog: {len(catalog)} products")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
