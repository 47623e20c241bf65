-- The table the example applications read: items(id, name), ids 1 to 1000.
-- psql -h 127.0.0.1 -U postgres -d test -f examples/setup_items.sql
CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO items (id, name)
SELECT i, 'item ' || i FROM generate_series(1, 1000) AS i
ON CONFLICT (id) DO NOTHING;
