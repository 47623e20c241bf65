"""Fault-injection tests: private PostgreSQL, MariaDB and pgbouncer servers, and a TCP
ChaosProxy, started by the session fixtures in conftest.py.

Needs the server binaries (postgresql, mariadb-server, pgbouncer) and either root (the
servers then run as the ``postgres`` and ``mysql`` users) or those users themselves.
Run with ``python -m pytest tests/faults``.
"""
