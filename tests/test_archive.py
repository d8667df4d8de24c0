"""The archive of trimmed branch-days (hub.archive): files stay inside their directory whatever a
branch is called, and writing a day again merges by seq."""
from __future__ import annotations

from datetime import date

from hub.archive import Archive

DAY = date(2026, 5, 19)


def ev(seq: int) -> dict:
    return {"seq": seq, "t": "2026-05-19T09:00:00+07:00", "type": "counter.opened", "branch": "x", "counter": "1"}


def test_a_branch_id_never_names_a_path_outside_the_archive(tmp_path):
    archive = Archive(tmp_path / "archive")
    for branch in ("..", ".", "../x", "a/b", "%2E%2E"):
        path = archive.path(branch, DAY).resolve()
        assert path.is_relative_to((tmp_path / "archive").resolve()), (branch, path)
        assert path.parent != (tmp_path / "archive").resolve(), branch      # a folder of its own
    assert len({archive.path(b, DAY) for b in ("..", ".", "%2E%2E", "%2E")}) == 4


def test_writing_a_day_again_merges_by_seq_and_leaves_no_temporary_file(tmp_path):
    archive = Archive(tmp_path)
    archive.write("..", DAY, [ev(1), ev(2)])
    archive.write("..", DAY, [ev(2), ev(3)])
    assert [e["seq"] for e in archive.read("..", DAY) or []] == [1, 2, 3]
    assert [e["seq"] for e in archive.events("..")] == [1, 2, 3]
    assert [p.name for p in archive.path("..", DAY).parent.iterdir()] == ["2026-05-19.jsonl"]
    assert not (tmp_path.parent / "2026-05-19.jsonl").exists()
