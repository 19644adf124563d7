"""`{% rule_rows rules %}`: the group page's rule rows (sgweb/dashboard/rulerows.py says why they
are drawn in Python). A library of its own: rulerows uses sgweb_ui's filters."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString

from sgweb.dashboard.rulerows import rule_rows as draw

register = template.Library()


@register.simple_tag(takes_context=True)
def rule_rows(context: Any, rules: Any) -> SafeString:
    return draw(context, rules)
