from django.apps import AppConfig


class NetworksConfig(AppConfig):
    name = "sgweb.networks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from sgweb.tenancy.hooks import project_hooks

        project_hooks.in_use.append(
            lambda project: project.ports.exists() or project.networks.exists()
        )
        project_hooks.usage.append(
            lambda project: {
                "network": project.networks.count(),
                "subnet": project.subnets.count(),
                "port": project.ports.count(),
            }
        )
