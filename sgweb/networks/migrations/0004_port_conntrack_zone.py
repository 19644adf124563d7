# One conntrack zone per port (Neutron's hybrid driver) instead of one per network: a host with
# ports of two networks had no zone for traffic towards its VMs (issue 11, item 1).

from django.db import migrations, models


def number_existing_ports(apps, schema_editor):
    port_model = apps.get_model("networks", "Port")
    for zone, port in enumerate(port_model.objects.order_by("created_at", "id"), start=4097):
        if zone > 65535:
            break  # the compiler numbers the rest on their hosts
        port.conntrack_zone = zone
        port.save(update_fields=["conntrack_zone"])


class Migration(migrations.Migration):
    dependencies = [
        ("networks", "0003_host_digests"),
    ]

    operations = [
        migrations.RemoveField(
            model_name="network",
            name="conntrack_zone",
        ),
        migrations.AddField(
            model_name="port",
            name="conntrack_zone",
            field=models.PositiveIntegerField(blank=True, editable=False, null=True, unique=True),
        ),
        migrations.RunPython(number_existing_ports, migrations.RunPython.noop),
    ]
