"""The founding idiom of eventlet's db_pool documentation, as written for eventlet.

The compatibility tests run this file as it is (with eventlet's own ``db_pool``) and with
only its import line swapped for ``from dbapi_pool.compat import eventlet_db_pool as
db_pool``: both runs must print the same thing.
"""

import MySQLdb
from eventlet import db_pool

cp = db_pool.ConnectionPool(MySQLdb, host="127.0.0.1", user="root", passwd="", db="test")
conn = cp.get()
try:
    result = conn.cursor().execute("SELECT NOW()")
finally:
    cp.put(conn)
print(result, bool(conn), cp.current_size, cp.free(), len(cp.free_items))
