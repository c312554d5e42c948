"""shop worker: every few seconds reads the catalog (a stand-in for a queue consumer)."""

import json
import os
import time
import urllib.request

CATALOG = os.environ.get("CATALOG_URL", "http://catalog:8080/products")

if __name__ == "__main__":
    print(f"worker polling {CATALOG}")
    while True:
        try:
            with urllib.request.urlopen(CATALOG, timeout=2) as response:
                print(f"worker: {len(json.loads(response.read()))} products to index")
        except (OSError, ValueError) as err:
            print(f"worker: catalog unreachable: {err}")
        time.sleep(5)
