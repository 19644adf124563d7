from django.apps import AppConfig


class AccountingConfig(AppConfig):
    name = "sgweb.accounting"
    label = "accounting"
    verbose_name = "Rule accounting"
    default_auto_field = "django.db.models.BigAutoField"
