"""Cursor pagination whose `limit` is checked, not guessed."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination

from core.http import ApiError

MAX_PAGE_SIZE = 100
# For the schema: what the server takes as `limit`, so the two agree.
LIMIT_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}
PAGE_PARAMETERS = [
    OpenApiParameter("limit", LIMIT_SCHEMA, description="Page size, 1 to 100 (default 20); anything else is "
                                                        "`400 limit_invalid`."),
    OpenApiParameter("cursor", str, description="The opaque cursor from `next` or `previous`."),
]


class StrictCursorPagination(CursorPagination):
    """DRF falls back to the default page size for `limit=AAA`, `null`, `true` or `0.5` and clamps
    `limit=1000`: a client's mistake then passes unseen. Here anything but 1-100 is a 400."""

    ordering = ("-created_at", "-id")
    page_size = 20
    page_size_query_param = "limit"
    max_page_size = MAX_PAGE_SIZE

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound:
            # DRF answers a bad cursor with 404; it is bad input, not a missing resource.
            raise ApiError("cursor_invalid", "cursor is not a cursor this API returned.", field="cursor") from None

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 3 and 1 <= int(raw) <= self.max_page_size):
            raise ApiError("limit_invalid", f"limit must be a whole number from 1 to {self.max_page_size}.",
                           field="limit")
        return int(raw)
