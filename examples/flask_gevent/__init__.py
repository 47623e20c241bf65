"""A Flask application served by gunicorn's gevent workers, one pool per worker."""
