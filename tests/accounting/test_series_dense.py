"""Rule series come out dense, whether every bucket of the window was kept or only some."""

from __future__ import annotations

import pytest

from sgweb.accounting import series
from sgweb.accounting.actions import add_samples
from sgweb.accounting.models import RuleSample
from tests.accounting.documents import alices_lab

pytestmark = pytest.mark.django_db


def test_full_sparse_and_empty_rules_read_as_dense_series_in_bucket_order(alice, project_a):
    lab = alices_lab(alice, project_a)
    span = series.Window(start=6000, end=6000 + 6 * 60, step=60)
    full = [(lab.icmp.id.hex, 60, b, b // 60, b) for b in span.buckets()]
    sparse = [(lab.ssh.id.hex, 60, 6120, 3, 30), (lab.ssh.id.hex, 60, 6300, 9, 90)]
    outside = [(lab.ssh.id.hex, 60, 6000 - 60, 1, 1), (lab.ssh.id.hex, 10, 6010, 1, 1)]
    add_samples(RuleSample, ("rule_id", "step", "bucket"), ("packets", "bytes"),
                full + sparse + outside)  # fmt: skip
    other = lab.port.id  # not a rule: an id with no samples at all
    got = series.rule_series([lab.ssh.id, lab.icmp.id, other], span)
    assert got[lab.icmp.id] == {
        "packets": [100, 101, 102, 103, 104, 105],
        "bytes": [6000, 6060, 6120, 6180, 6240, 6300],
    }
    assert got[lab.ssh.id] == {"packets": [0, 0, 3, 0, 0, 9], "bytes": [0, 0, 30, 0, 0, 90]}
    assert got[other] == {"packets": [0] * 6, "bytes": [0] * 6}
    assert series.rule_series([lab.icmp.id], span, fields=("packets",)) == {
        lab.icmp.id: {"packets": [100, 101, 102, 103, 104, 105]}
    }
    assert series.rule_series([], span) == {}
