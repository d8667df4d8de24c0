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

    # What the API answers (503 store_unavailable, with Retry-After): English, Vietnamese.
    public = ("The queue's store cannot be reached; nothing was done. Retry shortly.",
              "Không kết nối được kho dữ liệu; chưa thực hiện. Vui lòng thử lại.")


class NotReplicated(StoreUnavailable):
    """The command is in the master's log but fewer replicas than required confirmed it in time
    (WAIT): a failover now could lose it, so it is not acknowledged. It may still have been
    recorded: a retry with the same Idempotency-Key answers what was recorded, exactly once."""

    public = ("The command may have been recorded but is not yet safely copied; retry with the same "
              "Idempotency-Key to get its answer.",
              "Lệnh có thể đã được ghi nhưng chưa được sao lưu an toàn; vui lòng thử lại với cùng "
              "Idempotency-Key để nhận kết quả.")
