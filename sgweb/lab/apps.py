from django.apps import AppConfig


class LabConfig(AppConfig):
    name = "sgweb.lab"
    label = "lab"
    verbose_name = "Lab hosts"
