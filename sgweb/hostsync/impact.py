"""Which compute hosts a change affects.

A group's rules reach the hosts of the ports using the group; a group's membership (the
addresses of its ports) reaches the hosts of the ports whose groups name it as a remote group.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sgweb.networks.models import Port


def hosts_using_groups(group_ids: Iterable[uuid.UUID | str]) -> set[str]:
    ids = list(group_ids)
    if not ids:
        return set()
    return set(
        # django-stubs types an FK id lookup as the pk's UUID only; Django takes id strings too.
        Port.objects.filter(group_links__security_group_id__in=ids, host__isnull=False)  # type: ignore[misc]
        .order_by()  # Port's default ordering would make DISTINCT return a row per port
        .values_list("host__name", flat=True)
        .distinct()
    )


def hosts_referencing_groups(group_ids: Iterable[uuid.UUID | str]) -> set[str]:
    ids = list(group_ids)
    if not ids:
        return set()
    return set(
        Port.objects.filter(
            # django-stubs types an FK id lookup as the pk's UUID only; Django takes strings too.
            group_links__security_group__rules__remote_group_id__in=ids,  # type: ignore[misc]
            host__isnull=False,
        )
        .order_by()  # Port's default ordering would make DISTINCT return a row per port
        .values_list("host__name", flat=True)
        .distinct()
    )
