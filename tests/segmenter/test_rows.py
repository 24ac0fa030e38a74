"""Event ids of CSV rows: the file's own, or derived from the row's content and how many identical rows came before
it; ``by_content`` derives them for every row (a source whose ids change between exports)."""

from datetime import UTC

from segmenter.rows import RowReader

ROWS = [{"customer_id": "A", "occurred_at": "2026-01-05", "amount": "10.00", "event_id": "export1-17"},
        {"customer_id": "A", "occurred_at": "2026-01-05", "amount": "10.00", "event_id": "export1-18"}]


def _ids(rows, **options):
    reader = RowReader(UTC, "tx", **options)
    return [reader.transaction(row).event_id for row in rows], reader.repeated


def test_the_files_ids_are_kept_by_default():
    assert _ids(ROWS) == (["export1-17", "export1-18"], 0)


def test_by_content_two_exports_with_other_ids_give_the_same_events_and_a_repeat_stays_a_second_event():
    first, repeated = _ids(ROWS, by_content=True)
    again, _ = _ids([{**row, "event_id": f"export2-{n}"} for n, row in enumerate(ROWS)], by_content=True)
    assert first == again  # the ids the second export gives its rows do not matter
    assert first[0] != first[1]  # two identical purchases in one file stay two
    assert repeated == 1
    assert _ids([ROWS[0]], by_content=True)[0] == first[:1]  # an overlapping export: its first such row, the same id
