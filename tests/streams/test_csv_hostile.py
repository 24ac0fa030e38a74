"""Hostile CSV files for ``classify`` (and ``import``, which reads rows the same way): every bad row is reported
with its line and skipped, never a traceback; every CSV written escapes cells that a spreadsheet would run."""

import csv
import io
import time
from pathlib import Path

import pytest

from streams.cli.main import main
from streams.text import SafeCsvWriter, spreadsheet_safe

ROOT = Path(__file__).resolve().parents[2]
RETAIL = ROOT / "examples" / "rules" / "retail-value.yaml"
HEADER = b"customer_id,occurred_at,amount,kind,event_id\n"


def classify(tmp_path: Path, body: bytes, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[list[str]], str]:
    tx = tmp_path / "tx.csv"
    tx.write_bytes(HEADER + body)
    out = tmp_path / "out.csv"
    started = time.perf_counter()
    code = main(["classify", "--rules", str(RETAIL), "--transactions", str(tx), "--as-of", "2026-06-30",
                 "--out", str(out), "--quiet"])
    assert time.perf_counter() - started < 10
    rows = list(csv.reader(out.open())) if out.exists() else []
    return code, rows, capsys.readouterr().err


@pytest.mark.parametrize(("bad", "reported"), [
    (b"A,2026-06-01,NaN,,e1\n", "tx.csv:3: skipped: amount 'NaN' is not a finite number"),
    (b"A,2026-06-01,-Infinity,,e1\n", "tx.csv:3: skipped: amount '-Infinity' is not a finite number"),
    (b"A,2026-06-01,sNaN,,e1\n", "is not a finite number"),
    (b"A,2026-06-01,\"" + b"9" * 200_000 + b"\",,e1\n", "tx.csv:3: skipped: not readable as CSV: field larger"),
    (b"A\xff\xfe,2026-06-01,10,,e1\n", "tx.csv:3: skipped: bytes that are not UTF-8"),
    (b"A\x1fB,2026-06-01,10,,e1\n", "customer_id: must not contain control characters"),
    (b"A,2026-06-01," + b"1" * 5000 + b",,e1\n", "amount must be below 10^15"),
    (b"A,\x00,10,,e1\n", "tx.csv:3: skipped:"),
])
def test_a_bad_row_is_reported_and_the_good_rows_are_classified(tmp_path, capsys, bad, reported):
    code, rows, err = classify(tmp_path, b"G,2026-06-01,10,,g1\n" + bad + b"H,2026-06-02,10,,h1\n", capsys)
    assert code == 1, err  # the output is written, and the exit says rows were skipped
    assert "error: 1 bad rows were skipped" in err
    assert reported in err
    assert "Traceback" not in err
    assert {r[0] for r in rows[1:]} == {"G", "H"}


@pytest.mark.parametrize("customer", ["=SUM(1+1)", "@SUM(1+1)", "+1+1", "-1+1", "\tx"])
def test_a_customer_id_a_spreadsheet_would_run_is_written_as_text(tmp_path, capsys, customer):
    quoted = '"' + customer.replace('"', '""') + '"'
    code, rows, err = classify(tmp_path, f"{quoted},2026-06-01,10,,e1\n".encode(), capsys)
    assert code == 0, err
    if customer.startswith("\t"):  # the reader strips the tab: nothing left to run
        assert rows[1][0] == customer.strip()
    else:
        assert rows[1][0] == "'" + customer


def test_the_escaping_rule_touches_text_only():
    out = io.StringIO()
    SafeCsvWriter(out).writerow(["=1", "-5", -5, "a=b", "", "\rX", 3.5])
    assert out.getvalue() == "'=1,'-5,-5,a=b,,\"'\rX\",3.5\r\n"
    assert spreadsheet_safe("plain") == "plain"
