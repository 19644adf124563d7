from django.apps import AppConfig


class SecurityConfig(AppConfig):
    name = "sgweb.security"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from sgweb.security.actions import ensure_default_group
        from sgweb.security.choices import DEFAULT_GROUP_NAME
        from sgweb.tenancy.hooks import project_hooks

        # A new project gets its default group; only other groups keep a project from going.
        project_hooks.created.append(ensure_default_group)
        project_hooks.in_use.append(
            lambda project: project.security_groups.exclude(name=DEFAULT_GROUP_NAME).exists()
        )
