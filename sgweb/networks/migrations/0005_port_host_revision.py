from django.db import migrations, models


def existing_ports_count_as_applied(apps, schema_editor):
    # Ports that existed before ports had a status of their own: revision 0 means "any state
    # of the host carries them", so they follow their host's agent from now on.
    apps.get_model("networks", "Port").objects.update(host_revision=0)


class Migration(migrations.Migration):
    dependencies = [
        ("networks", "0004_port_conntrack_zone"),
    ]

    operations = [
        migrations.AddField(
            model_name="port",
            name="host_revision",
            field=models.PositiveBigIntegerField(blank=True, default=None, null=True),
        ),
        migrations.RunPython(existing_ports_count_as_applied, migrations.RunPython.noop),
    ]
