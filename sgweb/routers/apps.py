from django.apps import AppConfig


class RoutersConfig(AppConfig):
    name = "sgweb.routers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from sgweb.tenancy.hooks import project_hooks

        project_hooks.in_use.append(lambda project: project.routers.exists())
        project_hooks.usage.append(lambda project: {"router": project.routers.count()})
