"""The Celery application; importing it connects to nothing."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sgweb.settings")

app = Celery("sgweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
