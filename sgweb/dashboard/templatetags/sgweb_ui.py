"""Template helpers of the dashboard's design system: icons, status pills, rule formatting,
query-string links that keep filters, sortable headers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django import template
from django.http import QueryDict
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from sgweb.dashboard.presentation import rule_ports_text, rule_protocol_text

register = template.Library()

# Stroke icons drawn on a 24-unit grid, kept inline so the product works offline and icons
# inherit the text colour.
_ICON_PATHS: dict[str, str] = {
    "shield": '<path d="M12 3l8 3v6c0 4.6-3.3 8.1-8 9.5C7.3 20.1 4 16.6 4 12V6z"/>',
    "gauge": '<path d="M4 16a8 8 0 1 1 16 0"/><path d="M12 16l4-5"/><path d="M4 20h16"/>',
    "server": '<rect x="4" y="4" width="16" height="6" rx="1.5"/>'
    '<rect x="4" y="14" width="16" height="6" rx="1.5"/><path d="M8 7h.01M8 17h.01"/>',
    "plug": '<path d="M9 3v5M15 3v5"/><path d="M6 8h12v3a6 6 0 0 1-12 0z"/><path d="M12 17v4"/>',
    "network": '<rect x="9" y="3" width="6" height="5" rx="1"/><rect x="3" y="16" width="6" '
    'height="5" rx="1"/><rect x="15" y="16" width="6" height="5" rx="1"/>'
    '<path d="M12 8v4M6 16v-4h12v4"/>',
    "folder": '<path d="M3 6.5A1.5 1.5 0 0 1 4.5 5H9l2 2.5h8.5A1.5 1.5 0 0 1 21 9v9.5a1.5 1.5 0 '
    '0 1-1.5 1.5h-15A1.5 1.5 0 0 1 3 18.5z"/>',
    "history": '<path d="M3 12a9 9 0 1 0 3-6.7"/><path d="M3 4v5h5"/><path d="M12 8v4l3 2"/>',
    "key": '<circle cx="8" cy="15" r="4"/><path d="M11 12l9-9M17 6l3 3M15 8l2 2"/>',
    "chevron-down": '<path d="M6 9l6 6 6-6"/>',
    "search": '<circle cx="11" cy="11" r="6.5"/><path d="M20 20l-4.2-4.2"/>',
    "plus": '<path d="M12 5v14M5 12h14"/>',
    "trash": '<path d="M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13"/>',
    "edit": '<path d="M4 20h4L19 9l-4-4L4 16z"/><path d="M13 7l4 4"/>',
    "check": '<path d="M5 12.5l4.5 4.5L19 7"/>',
    "x": '<path d="M6 6l12 12M18 6L6 18"/>',
    "alert": '<path d="M12 4l9 16H3z"/><path d="M12 10v4M12 17h.01"/>',
    "copy": '<rect x="8" y="8" width="12" height="12" rx="1.5"/>'
    '<path d="M16 8V5.5A1.5 1.5 0 0 0 14.5 4h-9A1.5 1.5 0 0 0 4 5.5v9A1.5 1.5 0 0 0 5.5 16H8"/>',
    "lock": '<rect x="5" y="11" width="14" height="9" rx="1.5"/>'
    '<path d="M8 11V8a4 4 0 0 1 8 0v3"/>',
    "unlock": '<rect x="5" y="11" width="14" height="9" rx="1.5"/>'
    '<path d="M8 11V8a4 4 0 0 1 7.7-1.5"/>',
    "activity": '<path d="M3 12h4l3-8 4 16 3-8h4"/>',
    "inbox": '<path d="M3 13l3-8h12l3 8v6H3z"/><path d="M3 13h5l1 2h6l1-2h5"/>',
    "arrow-right": '<path d="M5 12h14M13 6l6 6-6 6"/>',
    "users": '<circle cx="9" cy="8" r="3.5"/><path d="M2.5 20a6.5 6.5 0 0 1 13 0"/>'
    '<path d="M16 4.5a3.5 3.5 0 0 1 0 7M18 14a6.5 6.5 0 0 1 3.5 6"/>',
}


@register.simple_tag
def icon(name: str, size: int = 16) -> SafeString:
    paths = _ICON_PATHS.get(name, _ICON_PATHS["alert"])
    return mark_safe(
        f'<svg class="icon icon-{name}" width="{int(size)}" height="{int(size)}" '
        'viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" '
        f'stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">{paths}</svg>'
    )


@register.filter
def rule_protocol(rule: Any) -> str:
    return rule_protocol_text(rule)


@register.filter
def rule_ports(rule: Any) -> str:
    return rule_ports_text(rule)


@register.simple_tag(takes_context=True)
def url_with(context: dict[str, Any], **changes: Any) -> str:
    """The current query string with some parameters replaced (None or "" removes them).

    Changing anything but the page sends the user back to page 1.
    """
    request = context["request"]
    query: QueryDict = request.GET.copy()
    if "page" not in changes:
        query.pop("page", None)
    for key, value in changes.items():
        if value is None or value == "":
            query.pop(key, None)
        else:
            query[key] = str(value)
    encoded = query.urlencode()
    return f"?{encoded}" if encoded else request.path


@register.simple_tag(takes_context=True)
def sort_header(context: dict[str, Any], field: str, label: str) -> SafeString:
    """A column header that sorts by `field`, toggling direction when already sorted by it."""
    request = context["request"]
    current = request.GET.get("sort", "")
    descending = current == f"-{field}"
    ascending = current == field
    target = f"-{field}" if ascending else field
    aria = ""
    if ascending:
        aria = ' aria-sort="ascending"'
    elif descending:
        aria = ' aria-sort="descending"'
    href = url_with(context, sort=target)
    return format_html('<th{}><a href="{}">{}</a></th>', mark_safe(aria), href, label)


@register.filter
def short_id(value: Any) -> str:
    return str(value)[:8]


@register.filter
def humanize_type(object_type: str) -> str:
    """`security_group_rule` -> `security group rule`."""
    return (object_type or "").replace("_", " ")


@register.simple_tag
def percent(used: int | None, limit: int | None) -> int:
    """How full a quota is, 0-100; unlimited (-1) and unset quotas read as empty."""
    if not used or not limit or limit < 0:
        return 0
    return min(100, round(used * 100 / limit))


@register.filter
def counter(value: Any) -> str:
    """A packet or byte counter as `iptables -L -v` prints it: 12345 -> 12345, 123456 -> 123K.

    The same rule as live.js's `compact`, so the first paint and the live updates agree."""
    if value is None or value == "":
        return "—"
    number = int(value)
    units = ["", "K", "M", "G", "T"]
    unit = 0
    while number >= 100000 and unit < len(units) - 1:
        number //= 1000
        unit += 1
    return f"{number}{units[unit]}"


@register.filter
def per_second(value: Any) -> str:
    if value is None or value == "":
        return "—"
    rate = float(value)
    if not rate:
        return "0/s"
    if rate < 10:
        return f"{rate:.1f}/s"
    return f"{counter(round(rate))}/s"


@register.filter
def unix_time(value: Any) -> Any:
    """Unix seconds (the live messages' times) as an aware datetime for the date filter."""

    if value in (None, ""):
        return None
    return datetime.fromtimestamp(float(value), tz=UTC)
