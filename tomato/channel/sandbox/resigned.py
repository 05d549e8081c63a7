"""Notify headers signed afresh on every send, for channels that sign each push anew (WeChat Pay)."""

from __future__ import annotations

from _collections_abc import dict_items
from collections.abc import Callable


class ResignedHeaders(dict[str, str]):
    """Headers signed afresh whenever httpx reads them (it reads a mapping through `items()`).

    WeChat signs every push anew; the shared Notifier resends one fixed mapping, so this one re-signs on each send.
    """

    def __init__(self, sign: Callable[[], dict[str, str]]) -> None:
        super().__init__(sign())
        self._sign = sign

    def items(self) -> dict_items[str, str]:
        self.update(self._sign())
        return super().items()
