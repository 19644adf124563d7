"""Server-side search, sorting and pagination shared by every list page.

Pages are counted with one COUNT and fetched with LIMIT/OFFSET on an indexed ordering, so a list
stays fast with thousands of rows; the number of queries does not depend on the number of rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest

PAGE_SIZE = 50
MAX_SEARCH_LENGTH = 200


def search_term(request: HttpRequest) -> str:
    return request.GET.get("q", "").strip()[:MAX_SEARCH_LENGTH]


def sorted_by(
    request: HttpRequest, queryset: QuerySet[Any], allowed: dict[str, str], default: str
) -> tuple[QuerySet[Any], str]:
    """Order by the `sort` parameter when it names an allowed column (`-` for descending)."""
    wanted = request.GET.get("sort", "")
    key = wanted.lstrip("-")
    if key not in allowed:
        return queryset.order_by(*default.split(",")), ""
    field = allowed[key]
    prefix = "-" if wanted.startswith("-") else ""
    # The primary key breaks ties so pages never repeat or skip rows.
    return queryset.order_by(f"{prefix}{field}", f"{prefix}pk"), wanted


@dataclass
class Listing:
    page: Page[Any]
    total: int
    query: str


def paginate(request: HttpRequest, queryset: QuerySet[Any], per_page: int = PAGE_SIZE) -> Listing:
    paginator = Paginator(queryset, per_page)
    page = paginator.get_page(request.GET.get("page"))
    return Listing(page=page, total=paginator.count, query=search_term(request))
