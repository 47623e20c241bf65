"""The WSGI application, for gunicorn (sync, gthread or gevent workers)::

gunicorn -k gevent -w 2 --bind 127.0.0.1:8000 project.wsgi
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

application = get_wsgi_application()
