"""Faults only the private MariaDB meets, with PyMySQL and mysqlclient: reads that never
complete, and connections returned with a read transaction open or a result half read
(matrix F6, F16).

The scenarios both servers share (restarts, killed sessions and queries, idle timeouts,
stalled logins, outages...) are written once in test_faults_servers.py. Sessions are told
apart by ``CONNECTION_ID()``; the ``db`` adapter logs in with an account of the test's own.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import pytest

from dbapi_pool import ConnectionPool

from .adapters import ServerAdapter, on_servers
from .chaosproxy import ChaosProxy
from .servers import PrivateMariaDB
from .support import closed_as_dead, elapsed, query_ok, scalar

PoolFactory = Callable[..., ConnectionPool]
ProxyFactory = Callable[[int], ChaosProxy]


# -- F6: reads that never complete -----------------------------------------------------


@on_servers(pg=())
def test_f6_read_timeout_on_a_stalled_connection_discards_it(
    db: ServerAdapter, mariadb: PrivateMariaDB, make_pool: PoolFactory, make_proxy: ProxyFactory
) -> None:
    """The server stops answering (proxy stall): only the driver's read_timeout ends the
    statement (2013 after about 1 s); the pool closes that connection on return and serves
    the next caller once the path is back."""
    proxy = make_proxy(mariadb.port)
    pool = db.pool(make_pool, max_size=1, connect={"port": proxy.port, "read_timeout": 1})
    assert query_ok(pool) == 1
    proxy.stall()
    with elapsed() as took, pytest.raises(db.module.OperationalError) as raised:
        query_ok(pool)
    assert raised.value.args[0] == 2013
    assert 0.9 <= took[0] < 15
    proxy.resume()
    assert closed_as_dead(pool) == 1
    assert query_ok(pool) == 1


# -- F16: state left by the borrower ---------------------------------------------------


@on_servers(pg=())
def test_f16_read_transaction_does_not_reach_the_next_borrower(
    db: ServerAdapter, mariadb: PrivateMariaDB, make_pool: PoolFactory
) -> None:
    """A borrower only reads an InnoDB table (autocommit off, so a transaction with a
    consistent snapshot is open) and returns the connection: the return must end that
    transaction, so the next borrower sees rows committed meanwhile and no lock lingers.

    POOL BUG (PyMySQL, today): MariaDB does not flag a read-only transaction in the
    OK/EOF server status, so the PyMySQL profile's transaction_idle says "idle", the
    ``with`` block skips its COMMIT and put() skips its rollback: the session goes back
    to the pool mid-transaction, the next borrower reads the old snapshot (0 rows instead
    of 1), and the open transaction holds metadata locks (a DROP TABLE waits on it).
    mysqlclient has no idle test, always rolls back, and passes.
    """
    table = db.create_table()
    pool = db.pool(make_pool, max_size=1)
    with pool.connection() as conn:
        session = db.session_of(conn)
        assert scalar(conn, f"SELECT COUNT(*) FROM {table}") == 0
    time.sleep(0.2)  # INNODB_TRX is a cache InnoDB refreshes at most every 0.1 s
    open_trx = mariadb.query(
        "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = %s",
        (session,),
    )[0][0]
    mariadb.query(f"INSERT INTO {table} VALUES (1)")  # autocommit: committed
    with pool.connection() as conn:
        assert db.session_of(conn) == session
        seen = scalar(conn, f"SELECT COUNT(*) FROM {table}")
    assert (open_trx, seen) == (0, 1), "the borrower's transaction outlived its checkout"


@on_servers(pg=())
def test_f16_returned_with_an_unread_streamed_result(
    db: ServerAdapter, make_pool: PoolFactory
) -> None:
    """Returned while an unbuffered (SSCursor) result is half read: put() comes back
    and the next borrower gets right answers. mysqlclient's rollback fails (2014,
    commands out of sync) so the connection is closed; PyMySQL's rollback first drains
    the old result (with its own UserWarning) and keeps the session."""
    pool = db.pool(make_pool, max_size=1)
    conn = pool.get(timeout=15)
    cursor = conn.cursor(db.module.cursors.SSCursor)
    cursor.execute("SELECT seq FROM seq_1_to_100000")
    assert cursor.fetchone() == (1,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PyMySQL: "left incomplete"
        with elapsed() as took:
            pool.put(conn)
        assert took[0] < 10
        assert query_ok(pool, "SELECT 5") == 5
    assert pool.stats().size == 1
