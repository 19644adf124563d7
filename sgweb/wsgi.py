"""WSGI entry point: the production layout serves the HTTP API and pages with gunicorn's
threaded workers (README "Production layout"); websockets go to the ASGI one (sgweb.asgi).

A WSGI server runs requests on a fixed set of threads, so each thread may keep its database
connection between requests (SQLite: opening and setting up the file cost more CPU than a small
list page; PostgreSQL goes through its pool either way). Under ASGI every request has a context
of its own, and kept connections would pile up: there they stay per request.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sgweb.settings")
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "600")

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()

from sgweb.gctune import tune_for_serving  # noqa: E402

tune_for_serving()
