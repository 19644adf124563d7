"""The control worker's side: apply and drift reports into Host and HostEvent; reconciling."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone

from sgweb.hostsync import publish
from sgweb.hostsync.models import HostEvent, HostEventKind, PublishIntent
from sgweb.hostsync.reconcile import reconcile
from sgweb.hostsync.records import record_apply, record_drift
from sgweb.networks.choices import HostStatus
from sgweb.networks.models import Host
from tests.agents.fakes import state

pytestmark = pytest.mark.django_db


def report(revision: int, ok: bool = True, **extra: object) -> dict:
    return {
        "host": "compute1", "revision": revision, "ok": ok, "mode": "incremental",
        "finished_at": time.time(), "duration_ms": 12.5, "rules": {"4": 40, "6": 60},
        "sets": 1, **extra,
    }  # fmt: skip


def test_a_successful_apply_marks_the_host_in_sync() -> None:
    Host.objects.create(name="compute1", desired_revision=3, status=HostStatus.SYNCING)
    record_apply(report(3))
    host = Host.objects.get(name="compute1")
    assert (host.status, host.applied_revision, host.last_apply_duration_ms) == ("in-sync", 3, 12)
    assert HostEvent.objects.get().kind == HostEventKind.APPLY


def test_an_apply_older_than_the_desired_revision_leaves_the_host_syncing() -> None:
    Host.objects.create(name="compute1", desired_revision=5)
    record_apply(report(4))
    assert Host.objects.get(name="compute1").status == HostStatus.SYNCING


def test_a_refused_apply_marks_the_host_failed_with_the_offending_line() -> None:
    Host.objects.create(name="compute1", desired_revision=4, applied_revision=3)
    record_apply(report(4, ok=False, error="iptables-restore: line 7 failed", error_line="-A x"))
    host = Host.objects.get(name="compute1")
    assert host.status == HostStatus.FAILED and host.applied_revision == 3
    assert "line 7 failed" in host.last_error and "-A x" in host.last_error
    record_apply(report(5))
    host.refresh_from_db()
    assert host.last_error == "" and host.applied_revision == 5


def test_a_late_report_does_not_overwrite_a_newer_one() -> None:
    Host.objects.create(name="compute1", desired_revision=6)
    late = report(5, finished_at=time.time() - 10)
    record_apply(report(6))
    record_apply(late)
    assert Host.objects.get(name="compute1").applied_revision == 6
    assert HostEvent.objects.count() == 2  # the history still has both


def test_drift_is_kept_as_a_host_event_the_admin_can_read() -> None:
    Host.objects.create(name="compute1")
    record_drift(
        {"host": "compute1", "revision": 2, "repaired": True,
         "found": {"missing_chains": ["IPv4 filter/neutron-openvswi-i6e3f2eda-3"]}}
    )  # fmt: skip
    event = HostEvent.objects.get()
    assert event.kind == HostEventKind.DRIFT and "repaired" in event.message


@pytest.mark.redis
def test_reconcile_republishes_lost_states_and_what_the_outbox_holds(
    sync_channel, monkeypatch
) -> None:
    monkeypatch.setattr(publish, "state_builder", lambda name: state())
    Host.objects.create(name="compute1")
    Host.objects.create(name="compute2")
    PublishIntent.objects.create(host_name="compute2", reason="redis was down")
    PublishIntent.objects.update(created_at=timezone.now() - dt.timedelta(seconds=5))
    outcome = reconcile(via=sync_channel)
    assert sorted(outcome.published) == ["compute1", "compute2"]
    assert not PublishIntent.objects.exists()
    assert reconcile(via=sync_channel).published == []  # nothing left to do
