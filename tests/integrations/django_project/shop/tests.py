"""The ORM over a dbapi-pool backend, run by Django's own test runner (``manage.py test``).

``tests/integrations/test_django_backends.py`` runs these in a subprocess for each backend
and driver; ``DBAPI_POOL_DJANGO_REPORT`` names a file where the database in use is written.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from django.core.signals import request_finished
from django.db import (
    DatabaseError,
    ProgrammingError,
    close_old_connections,
    connection,
    transaction,
)
from django.db.transaction import TransactionManagementError
from django.test import TransactionTestCase

from .models import Item

DATABASE_SQL = {"postgresql": "SELECT current_database()", "mysql": "SELECT DATABASE()"}
SESSION_SQL = {"postgresql": "SELECT pg_backend_pid()", "mysql": "SELECT CONNECTION_ID()"}
OTHER_SESSIONS_SQL = {
    "postgresql": "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()",
    "mysql": "SELECT count(*) FROM information_schema.processlist"
    " WHERE db = DATABASE() AND id <> CONNECTION_ID()",
}


def session() -> Any:
    """Name the server session of this thread's connection (SQLite: the connection)."""
    if connection.vendor not in SESSION_SQL:
        connection.ensure_connection()
        return id(connection.connection)
    with connection.cursor() as cursor:
        cursor.execute(SESSION_SQL[connection.vendor])
        return cursor.fetchone()[0]


class SessionCounter:
    """Count the server sessions on the test database, through a connection of its own."""

    def __init__(self) -> None:
        params = connection.get_connection_params()
        self.conn = connection.Database.connect(**params)
        if connection.vendor == "mysql":
            self.conn.autocommit(True)
        else:
            self.conn.autocommit = True  # pg_stat_activity is a snapshot per transaction

    def count(self) -> int:
        cursor = self.conn.cursor()
        cursor.execute(OTHER_SESSIONS_SQL[connection.vendor])
        (value,) = cursor.fetchone()
        cursor.close()
        return int(value)

    def close(self) -> None:
        self.conn.close()


class PooledBackendTests(TransactionTestCase):
    """What an application sees: the ORM, transactions, requests, threads and fork."""

    def test_runs_on_the_test_database_with_the_expected_driver(self) -> None:
        Item.objects.create(name="first")
        driver = type(connection.connection).__module__.split(".")[0]
        self.assertEqual(driver, os.environ["DBAPI_POOL_DJANGO_DRIVER"])
        name = connection.settings_dict["NAME"]
        if connection.vendor in SESSION_SQL:
            with connection.cursor() as cursor:
                cursor.execute(DATABASE_SQL[connection.vendor])
                name = cursor.fetchone()[0]
        with open(os.environ["DBAPI_POOL_DJANGO_REPORT"], "w") as report:
            json.dump({"database": name}, report)
        self.assertIsNotNone(connection.pool)

    def test_create_and_query(self) -> None:
        Item.objects.create(name="apple", quantity=3)
        Item.objects.create(name="pear", quantity=5)
        self.assertEqual(Item.objects.filter(quantity__gt=4).get().name, "pear")
        self.assertEqual(sorted(Item.objects.values_list("name", flat=True)), ["apple", "pear"])

    def test_atomic_commits_and_rolls_back(self) -> None:
        with transaction.atomic():
            Item.objects.create(name="kept")
            try:
                with transaction.atomic():  # a savepoint
                    Item.objects.create(name="inner")
                    raise ValueError("roll the savepoint back")
            except ValueError:
                pass
        try:
            with transaction.atomic():
                Item.objects.create(name="lost")
                raise ValueError("roll back")
        except ValueError:
            pass
        self.assertEqual(list(Item.objects.values_list("name", flat=True)), ["kept"])
        self.assertTrue(connection.get_autocommit())

    def test_on_commit_runs_after_commit_only(self) -> None:
        ran: list[str] = []
        with transaction.atomic():
            Item.objects.create(name="x")
            transaction.on_commit(lambda: ran.append("committed"))
            self.assertEqual(ran, [])
        try:
            with transaction.atomic():
                transaction.on_commit(lambda: ran.append("rolled back"))
                raise ValueError
        except ValueError:
            pass
        self.assertEqual(ran, ["committed"])

    def test_select_for_update_locks_the_row(self) -> None:
        item = Item.objects.create(name="locked", quantity=1)
        if connection.features.has_select_for_update:  # SQLite: locks the whole file
            with self.assertRaises(TransactionManagementError):
                list(Item.objects.select_for_update())
        outcome: list[str] = []

        def try_lock() -> None:
            try:
                with transaction.atomic():
                    Item.objects.select_for_update(nowait=True).get(pk=item.pk)
                outcome.append("locked")
            except DatabaseError:
                outcome.append("refused")
            finally:
                connection.close()

        with transaction.atomic():
            row = Item.objects.select_for_update().get(pk=item.pk)
            row.quantity += 1
            row.save()
            if connection.features.has_select_for_update_nowait:
                thread = threading.Thread(target=try_lock)
                thread.start()
                thread.join()
                self.assertEqual(outcome, ["refused"])
        self.assertEqual(Item.objects.get(pk=item.pk).quantity, 2)

    def test_end_of_request_returns_the_connection_for_reuse(self) -> None:
        connection.close()
        pool = connection.pool
        Item.objects.count()
        raw, before = connection.connection, session()
        self.assertEqual(pool.stats().in_use, 1)
        request_finished.send(sender=None)  # Django runs close_old_connections()
        self.assertIsNone(connection.connection)
        self.assertEqual(pool.stats().in_use, 0)
        Item.objects.count()
        self.assertIs(connection.connection, raw)  # the pool's, not a new connect
        self.assertEqual(session(), before)
        connection.close()
        self.assertEqual(pool.stats().in_use, 0)

    def test_closed_inside_atomic_goes_back_rolled_back(self) -> None:
        pool = connection.pool
        with self.assertRaisesMessage(ProgrammingError, "Cannot open a new connection"):
            with transaction.atomic():
                Item.objects.create(name="never committed")
                connection.close()
                self.assertEqual(pool.stats().in_use, 0)
                Item.objects.count()
        connection.close()
        self.assertEqual(Item.objects.count(), 0)

    def test_connection_time_zone_is_set(self) -> None:
        if connection.vendor != "postgresql":
            self.skipTest("a server time zone only PostgreSQL connections carry")
        for _ in range(2):  # a new connection, then a reused one
            with connection.cursor() as cursor:
                cursor.execute("SHOW TIME ZONE")
                self.assertEqual(cursor.fetchone()[0], "UTC")
            connection.close()

    def test_sessions_never_exceed_max_size_under_16_threads(self) -> None:
        connection.close()
        pool = connection.pool
        max_size = pool.config.max_size
        counter = SessionCounter() if connection.vendor in OTHER_SESSIONS_SQL else None
        peaks = {"sessions": 0, "in_use": 0}
        errors: list[BaseException] = []
        done = threading.Event()

        def work(n: int) -> None:
            try:
                for i in range(10):
                    Item.objects.create(name=f"t{n}", quantity=i)
                    self.assertEqual(Item.objects.filter(name=f"t{n}").count(), i + 1)
                    close_old_connections()
            except BaseException as error:  # reported by the main thread
                errors.append(error)
            finally:
                connection.close()

        def watch() -> None:
            while not done.is_set():
                if counter is not None:
                    peaks["sessions"] = max(peaks["sessions"], counter.count())
                peaks["in_use"] = max(peaks["in_use"], pool.stats().in_use)
                time.sleep(0.005)

        watcher = threading.Thread(target=watch)
        watcher.start()
        threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        done.set()
        watcher.join()
        if counter is not None:
            counter.close()
        self.assertEqual(errors, [])
        self.assertEqual(Item.objects.count(), 160)
        connection.close()
        stats = pool.stats()
        self.assertEqual(stats.in_use, 0)
        self.assertLessEqual(stats.size, max_size)
        self.assertEqual(peaks["in_use"], max_size)  # the threads did contend
        self.assertLessEqual(peaks["sessions"], max_size)
        if counter is not None:
            self.assertGreater(peaks["sessions"], 0)

    def test_forked_child_uses_its_own_connection(self) -> None:
        Item.objects.create(name="before fork")
        parent_raw, parent_session = connection.connection, session()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                facts = [connection.connection is None, session() != parent_session]
                facts.append(Item.objects.filter(name="before fork").count())
                connection.close()
                facts.append(connection.pool.stats().in_use)
                os.write(write_end, json.dumps(facts).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            facts = json.loads(pipe.read() or "null")
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.assertEqual(facts, [True, True, 1, 0])
        # The parent's session was neither used nor closed by the child.
        self.assertIs(connection.connection, parent_raw)
        self.assertEqual(session(), parent_session)
        self.assertEqual(Item.objects.count(), 1)
