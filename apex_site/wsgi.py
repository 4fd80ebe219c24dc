"""The WSGI application: Django over HTTP, served by gunicorn in production.

Websockets (``/ws/``) are not here: the ASGI application (``asgi.py``, under
uvicorn) serves them, and the reverse proxy routes the two
(``deploy/nginx/apex.conf.template``). Synchronous Django under a WSGI server
does not pay the ASGI handler's thread hand-offs on every request
(``docs/BENCHMARKS.md``, issue 17).
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apex_site.settings.base")
application = get_wsgi_application()

from apex_site.warmup import load_urlconf  # noqa: E402

load_urlconf()
