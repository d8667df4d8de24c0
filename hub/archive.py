"""The archive of trimmed branch-days: a file per branch and working day, `<dir>/<branch>/<YYYY-MM-DD>.jsonl`,
each line one event exactly as the log stored it (seq included), in seq order.

Whole events, not the trace `export-trace` writes: the trace leaves out what the estimator does not
read (opt-ins, ratings, kiosk devices), and nothing acknowledged may be deleted unarchived. The
trace of an archived day is made from these lines as from the log (hub/cli.py), so it is the same.
A file is written whole or not at all (a temporary file, fsync, rename, fsync of the directory),
and writing a day again merges by seq: several processes archiving the same day (a shared
directory) or a run repeated after a crash end with the same file.
"""
from __future__ import annotations

import json
import os
import secrets
from datetime import date
from pathlib import Path
from urllib.parse import quote

from hub.domain.events import Event


def _line(ev: Event) -> str:
    return json.dumps(ev, ensure_ascii=False, separators=(",", ":"))


class Archive:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def path(self, branch: str, day: date) -> Path:
        return self._folder(branch) / f"{day.isoformat()}.jsonl"

    def _folder(self, branch: str) -> Path:
        # Quoted, and "." / ".." spelled out: a branch id is configuration, never a path of its own.
        name = quote(branch, safe="")
        return self.directory / (name.replace(".", "%2E") if name in (".", "..") else name)

    def read(self, branch: str, day: date) -> list[Event] | None:
        """The archived events of the day, or None if it has no file."""
        try:
            text = self.path(branch, day).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return [json.loads(line) for line in text.splitlines() if line]

    def write(self, branch: str, day: date, events: list[Event]) -> None:
        """Archive the day's events, merged with what its file holds already (by seq)."""
        path = self.path(branch, day)
        merged = {ev["seq"]: ev for ev in self.read(branch, day) or []}
        merged.update((ev["seq"], ev) for ev in events)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Unique: processes on other machines (containers all pid 1) may archive the same day at once.
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(_line(merged[seq]) + "\n" for seq in sorted(merged))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)            # the rename itself survives a power cut
        finally:
            os.close(fd)

    def events(self, branch: str) -> list[Event]:
        """Every archived event of the branch, in seq order (a start that cannot use a snapshot)."""
        folder = self._folder(branch)
        found = [json.loads(line) for p in sorted(folder.glob("*.jsonl"))
                 for line in p.read_text(encoding="utf-8").splitlines() if line]
        return sorted(found, key=lambda ev: ev["seq"])


def of_day(directory: str, branch: str, day: date, kept: list[Event]) -> list[Event]:
    """A day's events: those the log `kept`, with those archived in `directory` ("": none) if the
    log was trimmed (hub/service/trim.py), by seq, each once (export-trace)."""
    archived = Archive(directory).read(branch, day) if directory else None
    by_seq = {ev["seq"]: ev for ev in archived or []}
    by_seq.update((ev["seq"], ev) for ev in kept)
    return [by_seq[s] for s in sorted(by_seq)]
