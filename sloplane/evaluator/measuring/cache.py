"""Query results cached for the declared monitoring interval.

Evaluations at "now" are aligned down to the interval, so every gate call within one interval asks
the same questions at the same instant: the first one pays, the others hit the cache. A replay at
an explicit past instant is cached too (the past does not change), bounded by size.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    """A thread-safe LRU cache whose entries expire after `ttl` seconds."""

    def __init__(
        self,
        ttl: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        on_lookup: Callable[[bool], None] | None = None,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._on_lookup = on_lookup
        self._entries: OrderedDict[object, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: object) -> V | None:
        """The cached value, or None when absent or expired."""
        with self._lock:
            entry = self._entries.get(key)
            hit = entry is not None and entry[0] > self._clock()
            if hit:
                self._entries.move_to_end(key)
            elif entry is not None:
                del self._entries[key]
        if self._on_lookup is not None:
            self._on_lookup(hit)
        return entry[1] if hit and entry is not None else None

    def put(self, key: object, value: V) -> None:
        """Store a value for `ttl` seconds, evicting the least recently used beyond the bound."""
        with self._lock:
            self._entries[key] = (self._clock() + self.ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
