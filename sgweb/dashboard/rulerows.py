"""The group page's rule rows, drawn in Python (issue 12: 100 rules with their sparklines).

The rows were a `{% for %}` block of detail.html; with ~40 lookups, filters, `{% url %}`,
`{% icon %}` and `{% csrf_token %}` per row, Django's template engine spent most of the page's
time on them. This draws the very same bytes (tests/dashboard/test_rule_rows.py compares the
page with the template it replaced) with plain string building: every value that came from a
`{{ }}` is escaped here as autoescape did, and formatted as the filters did (`counter`,
`per_second`, `date` in the current time zone, numbers as `{% localize off %}` prints them).

The page's live refresh (live.js `refreshGroup`) fetches the same page and swaps its
`[data-rules-body]` in, so it gets these rows too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from html import escape as _escape
from typing import Any

from django.conf import settings
from django.template.defaulttags import CsrfTokenNode
from django.urls import reverse
from django.utils.formats import localize
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.timezone import is_naive, localtime

from sgweb.dashboard.presentation import rule_ports_text, rule_protocol_text
from sgweb.dashboard.templatetags.sgweb_ui import counter, icon, per_second, unix_time

_SHIELD = str(icon("shield", 12))
_TRASH = str(icon("trash", 14))
_UNUSED_PILL = (
    '<span class="pill unused" data-unused title="No packet has matched this rule on any port '
    'using the group since its rules were applied" hidden>unused</span>'
)
_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"
_NL = "\n          "  # the loop's indentation in detail.html, kept so the bytes do not change


def _e(value: Any) -> str:
    """`{{ value }}`: escaped unless already safe; numbers printed as `{% localize off %}` does."""
    if isinstance(value, str):
        return str(value) if hasattr(value, "__html__") else _escape(value)
    if type(value) is int:
        return str(value)
    if value is None:
        return "None"
    return str(conditional_escape(localize(value, use_l10n=False)))


def _local(moment: datetime) -> datetime:
    # The `date` filter shows times in the current time zone (`expects_localtime`, as
    # django.utils.timezone.template_localtime decides it).
    if settings.USE_TZ and not is_naive(moment) and getattr(moment, "convert_to_local_time", True):
        return localtime(moment)
    return moment


def _stamp(moment: datetime) -> str:
    return str(int(_local(moment).timestamp()))  # `|date:'U'`


def _seconds(moment: datetime) -> str:
    return _local(moment).strftime("%Y-%m-%d %H:%M:%S")  # `|date:'Y-m-d H:i:s'`


def _remote(rule: Any, group_pk: Any, group_url: str) -> str:
    remote = rule.remote_group
    if remote is not None:
        name = _e(remote.name)
        shown = name if remote.name else _e(str(rule.remote_group_id))
        this = (
            ' <span class="faint">(this group)</span>' if rule.remote_group_id == group_pk else ""
        )
        url = _e(group_url.replace(_PLACEHOLDER, str(rule.remote_group_id)))
        return f'<a href="{url}" title="Members of group {name}">{_SHIELD} {shown}{this}</a>'
    if rule.remote_ip_prefix:
        return _e(rule.normalized_cidr or rule.remote_ip_prefix)
    wildcard = "::/0" if rule.ethertype == "IPv6" else "0.0.0.0/0"
    return f'<span class="muted">any ({wildcard})</span>'


def _hits_cell(hit: Any) -> str:
    if not hit:
        return f'{_UNUSED_PILL} <span data-hits><span class="faint">—</span></span>' \
            '<span class="sub" data-rate></span>'  # fmt: skip
    title = f"{_e(hit.packets)} packets, {_e(hit.bytes)} bytes over {_e(hit.ports)} port(s)"
    return (
        f'{_UNUSED_PILL} <span data-hits title="{title}">{_e(counter(hit.packets))}</span>'
        f'<span class="sub" data-rate>{_e(per_second(hit.pps))}</span>'
    )


def _last_hit_cell(hit: Any, kept: Any) -> str:
    live_at = hit.last_hit_at if hit else None
    kept_at = kept.last_hit_at
    attrs = text = ""
    if live_at:
        seen = _local(unix_time(live_at))
        attrs = f' data-at="{_e(live_at)}" title="{seen.strftime("%Y-%m-%d %H:%M:%S")} UTC"'
        text = seen.strftime("%H:%M:%S")
    elif kept_at:
        attrs = f' data-at="{_stamp(kept_at)}" title="{_seconds(kept_at)} UTC"'
    if kept_at:
        attrs += f' data-kept-at="{_stamp(kept_at)}"'
        if not live_at:
            text = _local(kept_at).strftime("%Y-%m-%d %H:%M")
    if not live_at and not kept_at:
        text = '<span class="faint">never</span>'
    return f'<td class="nowrap" data-last-hit{attrs}>{text}</td>'


def _kept_cell(kept: Any) -> str:
    title = f"{_e(kept.packets)} packets, {_e(kept.bytes)} bytes since the rule was created"
    if kept.first_hit_at:
        title += f"; first hit {_seconds(kept.first_hit_at)} UTC"
    days = _e(kept.unused_days)
    pill = ""
    if kept.never_hit:
        since = f" · {days} d" if kept.unused_days else ""
        pill = (
            f'<span class="pill unused-days" data-unused-days="{days}" title="No packet has '
            "matched this rule on any port or host since it was created, "
            f'{days} day(s) ago">never hit{since}</span>'
        )
    elif kept.unused_days:
        pill = (
            f'<span class="pill unused-days" data-unused-days="{days}" title="Last hit '
            f'{_seconds(kept.last_hit_at)} UTC">unused for {days} d</span> '
        )
    total = "" if kept.never_hit else _e(counter(kept.packets))
    return f'<td class="num mono nowrap" data-kept-total title="{title}">{pill}{total}</td>'


def _actions_cell(rule: Any, direction: str, protocol: str, ports: str, csrf: str) -> str:
    return (
        '\n            <td class="actions">'
        f'\n              <form class="inline" method="post" action="{_e(rule.delete_url)}" '
        f'data-confirm="Delete this {direction} {protocol} rule? Connections it allowed are '
        'cut on every host using the group." data-confirm-label="Delete rule">'
        f'\n                {csrf}<button class="btn btn-sm btn-ghost" type="submit" '
        f'aria-label="Delete rule {direction} {protocol} {ports}">{_TRASH}</button>'
        "\n              </form>\n            </td>\n            "
    )


def rule_row(rule: Any, *, group_pk: Any, group_url: str, window: str, added: str,
             csrf: str | None) -> str:  # fmt: skip
    """One rule's `<tr>` and the loop's whitespace around it; `csrf` None: no actions column."""
    hit, kept, pk = rule.hit, rule.kept, str(rule.pk)
    direction, ethertype = _e(rule.direction), _e(rule.ethertype)
    protocol = _e(rule_protocol_text(rule))
    ports = _e(rule_ports_text(rule))
    hit_count = f' data-hit-count="{_e(hit.packets)}"' if hit else ""
    new = "is-new" if pk in added else ""
    actions = "" if csrf is None else _actions_cell(rule, direction, protocol, ports, csrf)
    return (
        f'{_NL}<tr data-rule-id="{pk}"{hit_count} data-kept-packets="{_e(kept.packets)}" '
        f'class="{new}">'
        f'\n            <td class="nowrap"><span class="tag dir-{direction}">{direction}</span> '
        f'<span class="mono muted">{ethertype}</span></td>'
        f'\n            <td class="mono">{protocol}</td>'
        f'\n            <td class="mono">{ports}</td>'
        f'\n            <td class="mono">{_remote(rule, group_pk, group_url)}</td>'
        f'\n            <td class="wrap">{_e(rule.description or "")}</td>'
        f'\n            <td class="num mono nowrap">{_hits_cell(hit)}</td>'
        f"\n            {_last_hit_cell(hit, kept)}"
        f'\n            <td class="nowrap"><span class="spark" data-spark="{pk}" '
        f'data-spark-source="rule-sparks"></span> <span class="mono sub" data-window-packets '
        f'title="Packets in the last {_e(window)}">{_e(counter(kept.window_packets))}</span></td>'
        f"\n            {_kept_cell(kept)}"
        f"\n            {actions}{_NL}</tr>{_NL}"
    )


def rule_rows(context: Any, rules: Iterable[Any]) -> SafeString:
    """The rows of detail.html's rules table, for a template context holding `group`,
    `can_change`, `window`, `request` and `csrf_token` (rules carry `.hit`, `.kept` and
    `.delete_url`, as `_detail_context` sets them)."""
    group = context.get("group")
    request = context.get("request")
    added = request.GET.get("added", "") if request is not None else ""
    csrf = str(CsrfTokenNode().render(context)) if context.get("can_change") else None
    group_url = reverse("dashboard:security_group", args=(_PLACEHOLDER,))
    rows = "".join(
        rule_row(
            rule,
            group_pk=group.pk,
            group_url=group_url,
            window=context.get("window", ""),
            added=added,
            csrf=csrf,
        )
        for rule in rules
    )
    return mark_safe(_NL + rows + _NL)  # every value above went through _e
