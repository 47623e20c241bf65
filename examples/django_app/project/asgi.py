"""The ASGI application, for uvicorn (Django runs the sync views, and so their ORM
calls, in threads through ``sync_to_async``)::

    uvicorn project.asgi:application --host 127.0.0.1 --port 8000
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

application = get_asgi_application()
