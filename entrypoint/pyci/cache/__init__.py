"""Warm starts (issue 23): one cache directory (input cache-dir), restored from at the start of a run
and saved to at its end, holding the layer cache of the images pyci builds ahead.

The package, along its seams: store (the directory: entries renamed into place, a lock file, LRU
eviction to cache-size, a marker so a foreign or corrupt directory is left alone), layers (the images
built ahead, saved with their inline cache metadata and loaded as `cachefrom`), steps (the pipeline's
calls, the log and the summary).
"""

from pyci.cache.layers import Restored, Saved, cache_tag, choose, entry_key, secret_args
from pyci.cache.store import Entry, Store, Unusable, open_store

__all__ = ["Entry", "Restored", "Saved", "Store", "Unusable", "cache_tag", "choose", "entry_key",
           "open_store", "secret_args"]
