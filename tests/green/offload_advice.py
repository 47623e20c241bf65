"""Open a psycopg2 pool under a green mode and print, as one JSON line, whether it
offloads and the WARNINGs it logged (issue 15: a forgotten ``patch_psycopg()``).

Usage: ``python offload_advice.py MODE CASE``: MODE as in greenmode.py; CASE ``plain``
(offload "auto", psycopg2 as it is), ``psycogreen`` (``patch_psycopg()`` first, as its
docs say: after monkey-patching) or ``forced`` (``offload=True``).
"""

from __future__ import annotations

from greenmode import BACKEND  # monkey-patches: before every other import

# isort: split

import json
import logging
import sys

import psycopg2

from dbapi_pool import ConnectionPool

CASE = sys.argv[2]


class Collect(logging.Handler):
    """Keep the messages of the records at WARNING and above."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def main() -> None:
    if CASE == "psycogreen":
        from psycogreen.eventlet import patch_psycopg as eventlet_patch
        from psycogreen.gevent import patch_psycopg as gevent_patch

        (gevent_patch if BACKEND == "gevent" else eventlet_patch)()
    collect = Collect()
    logging.getLogger("dbapi_pool").addHandler(collect)
    offload = True if CASE == "forced" else "auto"
    pool = ConnectionPool(
        psycopg2, host="127.0.0.1", user="postgres", dbname="test",
        backend=BACKEND, offload=offload, name="advised",
    )  # fmt: skip
    one = pool.fetchval("SELECT %s", (1,))  # works either way: offloaded or direct
    pool.close()
    print(json.dumps({"offloaded": pool.offloaded, "one": one, "warnings": collect.messages}))


main()
