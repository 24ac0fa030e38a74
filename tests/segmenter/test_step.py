import orjson
import pytest

from segmenter import codec, step
from segmenter.errors import InvalidStateError
from segmenter.policy import Policy
from segmenter.state import EMPTY, apply
from tests.segmenter.helpers import day, purchase

POLICY = Policy()

RECORD = step.CustomerRecord(
    apply(EMPTY, purchase("2026-05-01", 12, "e1"), day("2026-06-30"), POLICY)[0],
    {"profile.region": "south", "profile.type": None},
    (("value", "low_value"), ("lifecycle", "新客户")),
    "retail-value@3", day("2026-11-01"), 7)


@pytest.mark.parametrize("record", [RECORD, step.CustomerRecord(), RECORD._replace(due=None, profile={})])
def test_records_round_trip(record):
    assert step.loads(step.dumps(record)) == record


def test_records_written_in_format_1_are_still_read():
    state = codec.dumps(RECORD.state)
    old = len(state).to_bytes(4, "big") + state + orjson.dumps(
        [RECORD.profile, [list(s) for s in RECORD.segments], RECORD.ruleset, RECORD.due, RECORD.seq])
    assert step.loads(old) == RECORD


@pytest.mark.parametrize("cut", [1, 5, -3, -1])
def test_a_truncated_record_is_a_clear_error(cut):
    data = step.dumps(RECORD)
    with pytest.raises(InvalidStateError, match=r"customer record|window state"):
        step.loads(data[:cut])


def test_trailing_bytes_are_refused():
    with pytest.raises(InvalidStateError, match="trailing"):
        step.loads(step.dumps(RECORD) + b"\x00")
