"""Loaded (through PYTHONPATH) only by the moto server process that `s3_server.py` starts.

moto's S3 checks `If-None-Match: *` and then stores the object as two steps, while its server
handles requests on many threads: two conditional creates of one key can, rarely, both succeed.
S3 (and MinIO, R2, ...) make that check atomic, and the warehouse's commit protocol relies on it.
So that the tests exercise the protocol against a store that keeps its promise, this makes the
moto server handle one request at a time (moto holds the GIL for nearly all of a request anyway).
The client side is untouched.
"""

import threading

try:
    from moto.moto_server import werkzeug_app as _app
except Exception:  # not moto, or another version's layout: leave it alone
    _app = None

if _app is not None and hasattr(_app, "DomainDispatcherApplication"):
    _lock = threading.Lock()
    _call = _app.DomainDispatcherApplication.__call__

    def _serialised(self, environ, start_response):  # type: ignore[no-untyped-def]
        with _lock:
            return _call(self, environ, start_response)

    _app.DomainDispatcherApplication.__call__ = _serialised
