"""What a store raises, whatever the backend: the caller's retry policy reads these two."""
from __future__ import annotations


class SeqConflict(Exception):
    """The branch log moved on since the caller read it (another process appended): re-read, retry."""

    def __init__(self, branch: str, expected: int, actual: int):
        super().__init__(f"branch {branch}: expected log head {expected}, found {actual}")
        self.branch, self.expected, self.actual = branch, expected, actual


class StoreUnavailable(Exception):
    """The backend cannot be reached or cannot write now (Redis down, SQLite locked past its
    timeout, a disk error). The command did not happen, or its outcome is unknown: retry it with
    the same Idempotency-Key."""
