"""WSGI entry point (the ASGI one in sgweb.asgi is what `manage.py up` serves)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sgweb.settings")
application = get_wsgi_application()

from sgweb.gctune import tune_for_serving  # noqa: E402

tune_for_serving()
