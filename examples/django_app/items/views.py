"""The example's views: ``/health``, ``/item/<id>``, ``/stats`` and ``/pool``.

Django checks a connection out of the process's pool at a request's first query and gives
it back at the request's end (``request_finished``), so a view just uses the ORM.
"""

import os

from django.db import connection
from django.db.models import TextField
from django.db.models.expressions import RawSQL
from django.http import HttpRequest, JsonResponse

import dbapi_pool
from dbapi_pool import PoolTimeout

from .models import Item

#: 2 ms of server time per item, as a real query would take (pg_sleep returns void).
PAUSE = RawSQL("pg_sleep(0.002)", (), output_field=TextField())


def health(request: HttpRequest) -> JsonResponse:
    """Answer without touching the database."""
    return JsonResponse({"status": "ok"})


def item(request: HttpRequest, item_id: int) -> JsonResponse:
    """Return one item, or 404; 503 when no connection came in time (the checkout is
    tagged with the path, so the PoolTimeout names the routes holding connections)."""
    try:
        with dbapi_pool.tagged(request.path):
            row = Item.objects.annotate(pause=PAUSE).values("id", "name").get(pk=item_id)
    except Item.DoesNotExist:
        return JsonResponse({"error": f"no item {item_id}"}, status=404)
    except PoolTimeout as exc:
        return JsonResponse({"error": str(exc)}, status=503)
    return JsonResponse(row)


def _pool() -> dbapi_pool.ConnectionPool:
    pool = connection.pool
    assert pool is not None, "OPTIONS['pool'] is set in the settings"
    return pool


def stats(request: HttpRequest) -> JsonResponse:
    """Return the statistics of this process's pool (``pool.stats().as_dict()``)."""
    return JsonResponse(_pool().stats().as_dict())


def pool(request: HttpRequest) -> JsonResponse:
    """Say which process answered and how its pool waits: ``backend`` (threads or
    gevent), ``offloaded`` (driver calls in OS threads), ``in_use`` and ``size``."""
    current = _pool()
    counts = current.stats()
    return JsonResponse(
        {
            "pid": os.getpid(),
            "backend": current.backend,
            "offloaded": current.offloaded,
            "in_use": counts.in_use,
            "size": counts.size,
        }
    )
