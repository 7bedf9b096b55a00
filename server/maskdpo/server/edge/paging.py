"""Page size and token handling shared by every List method (AIP-158 style)."""

from __future__ import annotations

from maskdpo.server.errors import InvalidArgument

DEFAULT_PAGE = 50
MAX_PAGE = 1000


def page(page_size: int, page_token: str) -> tuple[int, int]:
    """(size, offset) of a List call; InvalidArgument for a negative size or a malformed token."""
    if page_size < 0:
        raise InvalidArgument("page_size", "must be >= 0")
    size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
    if not page_token:
        return size, 0
    if not page_token.isdigit() or len(page_token) > 12:
        raise InvalidArgument("page_token", "not a token this server issued")
    return size, int(page_token)
