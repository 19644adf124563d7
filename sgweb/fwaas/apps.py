from django.apps import AppConfig


class FwaasConfig(AppConfig):
    name = "sgweb.fwaas"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from sgweb.fwaas.actions import port_in_group
        from sgweb.routers.hooks import interface_in_use
        from sgweb.tenancy.hooks import project_hooks

        interface_in_use.append(port_in_group)

        project_hooks.in_use.append(
            lambda project: (
                project.firewall_rules.exists()
                or project.firewall_policies.exists()
                or project.firewall_groups.exists()
            )
        )
        project_hooks.usage.append(
            lambda project: {
                "firewall_rule": project.firewall_rules.count(),
                "firewall_policy": project.firewall_policies.count(),
                "firewall_group": project.firewall_groups.count(),
            }
        )
