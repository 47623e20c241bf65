"""The real drivers the green scenarios run, with their connect() keywords.

Import it after ``greenmode`` (which monkey-patches first, when the mode says so).
"""

from __future__ import annotations

from typing import Any

import MySQLdb
import psycopg2
import pymysql

PG = {"host": "127.0.0.1", "user": "postgres", "dbname": "test"}
MY = {"host": "127.0.0.1", "user": "root"}
DRIVERS: list[tuple[str, Any, dict[str, Any]]] = [
    ("psycopg2", psycopg2, PG),
    ("pymysql", pymysql, {**MY, "password": "", "database": "test", "ssl_disabled": True}),
    ("MySQLdb", MySQLdb, {**MY, "passwd": "", "db": "test"}),
]
