"""Types of the compiled chain walk (``_walk.c``)."""

from typing import Any

class Kernel:
    def __init__(
        self, client: str, key: bytes, prefix: bytes, plain_kinds: frozenset[str]
    ) -> None: ...
    def run(
        self,
        rows: _Rows,
        leaves: _Rows,
        start: int,
        chain: Any,
        tree: Any,
        anchor_seq: int,
        next_due: int,
    ) -> int: ...

_Rows = list[tuple[Any, ...]]

class SqliteRange:
    def __init__(self, path: str, client: str, start: int, end: int) -> None: ...
    def run(
        self, kernel: Kernel, chain: Any, tree: Any, anchor_seq: int, next_due: int
    ) -> tuple[Any, ...] | None: ...
    def close(self) -> None: ...
