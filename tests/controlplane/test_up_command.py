from io import StringIO

from django.core.management import call_command

from sgweb.networks.models import Host, Port
from sgweb.security.models import SecurityGroup
from sgweb.tenancy.models import ApiToken, hash_token_key


def run_up() -> str:
    out = StringIO()
    call_command("up", "--no-serve", "--no-redis", "--no-hooks", stdout=out)
    return out.getvalue()


def test_up_without_serving_creates_the_admin_demo_data_and_prints_a_working_token(db):
    output = run_up()
    token_line = next(line for line in output.splitlines() if "API token" in line)
    key = token_line.split()[-1]
    assert ApiToken.objects.filter(key_hash=hash_token_key(key)).exists()
    assert "password" in output
    assert set(Host.objects.values_list("name", flat=True)) == {"compute1", "compute2"}
    assert {"default", "web", "db"} <= set(SecurityGroup.objects.values_list("name", flat=True))
    assert Port.objects.filter(host__name="compute2").count() == 2


def test_up_run_twice_keeps_the_demo_and_the_admin_password(db):
    run_up()
    ports = Port.objects.count()
    output = run_up()
    assert "already there" in output
    assert "unchanged" in output
    assert Port.objects.count() == ports
