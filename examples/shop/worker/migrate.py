"""shop migrate (a Job on the worker's image): waits for the db, then "migrates" and exits 0."""

import os
import time
import urllib.request

DB = os.environ.get("DB_URL", "http://db:5432/")

if __name__ == "__main__":
    for _attempt in range(60):
        try:
            with urllib.request.urlopen(DB, timeout=2):
                break
        except OSError as err:
            print(f"waiting for the db: {err}")
            time.sleep(2)
    else:
        raise SystemExit("the db never answered")
    print("migrated")
