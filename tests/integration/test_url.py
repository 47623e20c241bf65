"""ConnectionPool.from_url with each driver."""

from __future__ import annotations

from dbapi_pool import ConnectionPool

from .support import Database, scalar


def test_from_url(dbenv: Database) -> None:
    url = dbenv.spec.url.format(path=dbenv.sqlite_path)
    marker = dbenv.new_marker()
    if dbenv.server == "postgres":
        url += f"?application_name={marker}"  # query keywords go to connect()
    pool = dbenv.track(ConnectionPool.from_url(url, max_size=2))
    assert pool.module is dbenv.module
    conn = pool.get()
    try:
        assert scalar(conn, "SELECT 1") == 1
        if dbenv.server == "postgres":
            assert scalar(conn, "SELECT current_database()") == "test"
            assert dbenv.marker_count(marker) == 1
        elif dbenv.server == "mariadb":
            assert scalar(conn, "SELECT DATABASE()") == "test"
        else:
            cur = conn.cursor()
            cur.execute("PRAGMA database_list")
            files = [row[2] for row in cur.fetchall() if row[1] == "main"]
            cur.close()
            assert files == [str(dbenv.sqlite_path)]
    finally:
        pool.put(conn)
    assert pool.stats().checkouts == 1
