from decimal import Decimal
from fractions import Fraction

import pytest

from segmenter import codec
from segmenter.errors import InvalidEventError, InvalidStateError
from segmenter.metrics import compute
from segmenter.policy import Policy
from segmenter.state import EMPTY, Outcome, advance, apply, totals_at
from tests.segmenter.helpers import day, interaction, purchase, refund

POLICY = Policy()


def fold(facts, now="2026-06-30"):
    state = EMPTY
    outcomes = []
    for fact in facts:
        state, outcome = apply(state, fact, day(now), POLICY)
        outcomes.append(outcome)
    return state, outcomes


def test_purchases_and_refunds_sum_into_the_windows():
    state, _ = fold([purchase("2026-06-01", 100, "a"), purchase("2025-09-01", 50, "b"),
                     refund("2026-06-02", 30, "c")])
    m = compute(state, day("2026-06-30"), POLICY)
    assert (m["purchases_12m"], m["amount_12m"], m["refunds_12m"]) == (2, 12000, 1)
    assert (m["purchases_6m"], m["amount_6m"]) == (1, 7000)
    assert m["avg_order_value_12m"] == Fraction(12000, 2)


def test_a_repeated_event_id_changes_nothing():
    state, outcomes = fold([purchase("2026-06-01", 100, "a"), purchase("2026-06-01", 100, "a")])
    assert outcomes == [Outcome.APPLIED, Outcome.DUPLICATE]
    assert compute(state, day("2026-06-30"), POLICY)["purchases_12m"] == 1


def test_out_of_order_events_are_exact():
    ordered, _ = fold([purchase("2026-01-01", 1, "a"), purchase("2026-03-01", 2, "b"),
                       purchase("2026-05-01", 3, "c")])
    shuffled, _ = fold([purchase("2026-05-01", 3, "c"), purchase("2026-01-01", 1, "a"),
                        purchase("2026-03-01", 2, "b")])
    assert ordered == shuffled


def test_events_older_than_the_longest_window_count_in_no_window_but_still_date_the_first_purchase():
    state, outcomes = fold([purchase("2025-06-30", 100, "old"), purchase("2025-07-01", 1, "edge")])
    assert outcomes == [Outcome.TOO_OLD, Outcome.APPLIED]
    assert [b.day for b in state.buckets] == [day("2025-07-01")]
    assert totals_at(state, day("2026-06-30"), POLICY).long[:2] == (1, 100)  # the edge purchase alone (1.00)
    # the late purchase happened: days since the first purchase count from it (a min, so replays are harmless)
    assert state.first_purchase == day("2025-06-30")
    assert state.last_purchase == day("2025-07-01")


def test_advance_drops_buckets_that_left_every_window_but_keeps_purchase_days():
    state, _ = fold([purchase("2025-07-01", 1, "a"), purchase("2026-01-01", 2, "b")])
    later = advance(state, day("2026-07-01"), POLICY)
    assert [b.day for b in later.buckets] == [day("2026-01-01")]
    assert later.first_purchase == day("2025-07-01")
    assert advance(later, day("2026-07-01"), POLICY) is later


def test_interactions_feed_counts_complaints_referrals_and_satisfaction():
    state, _ = fold([interaction("2026-06-01", "i1", "complaint", 2), interaction("2026-06-02", "i2", "referral"),
                     interaction("2025-08-01", "i3", "survey", 5)])
    m = compute(state, day("2026-06-30"), POLICY)
    assert (m["interactions_12m"], m["interactions_6m"], m["complaints_6m"], m["referrals_12m"]) == (3, 2, 1, 1)
    assert m["satisfaction_avg_12m"] == Fraction(7, 2)
    assert m["days_since_last_purchase"] is None


def test_codec_round_trips_and_is_compact():
    state, _ = fold([purchase("2026-06-01", 100, "a"), refund("2026-06-02", 30, "c"),
                     interaction("2026-04-01", "i", "complaint", 3), purchase("2025-09-01", 50, "b")])
    data = codec.dumps(state)
    assert codec.loads(data) == state
    assert len(data) < 80
    assert codec.loads(codec.dumps(EMPTY)) == EMPTY


@pytest.mark.parametrize(("data", "message"), [
    (b"", "expected format 1 or 2, found nothing"),
    (b"\x09abc", "expected format 1 or 2, found 9"),
    (b"\x01\x05", "truncated"),
    (b"\x01\x85", "truncated"),  # inside the header's first varint
    # a bucket whose purchase count (a garbled varint) puts the next bucket past any index: IndexError when
    # interpreted, ValueError ("int too large to convert to i64") compiled; both refused alike
    (b"\x01\x01\x01\x02\x00\x01" + b"\xff" * 10 + b"\x01", "truncated"),
])
def test_corrupt_state_is_refused(data, message):
    with pytest.raises(InvalidStateError, match=message):
        codec.loads(data)
    with pytest.raises(InvalidStateError, match=message):  # the sums straight from the bytes refuse it alike
        codec.sums(data, 1, 0, 0)


def test_a_day_of_many_events_keeps_its_ids_ascending_and_finds_every_repeat():
    ids = [f"e{n}" for n in range(40)]
    state, outcomes = fold([purchase("2026-06-01", 1, i) for i in ids[::3] + ids[1::3] + ids[2::3]])
    assert outcomes == [Outcome.APPLIED] * 40
    hashes = state.buckets[0].ids
    chunks = [hashes[k : k + 8] for k in range(0, len(hashes), 8)]
    assert len(chunks) == 40
    assert chunks == sorted(chunks)
    repeated = state
    for i in ids:
        repeated, outcome = apply(repeated, purchase("2026-06-01", 1, i), day("2026-06-30"), POLICY)
        assert outcome is Outcome.DUPLICATE
    assert repeated is state


def test_a_state_written_with_its_ids_out_of_order_is_read_in_order():
    """Older writers did not sort a day's hashes: a reader sorts them, so a repeat is still found."""
    state, _ = fold([purchase("2026-06-01", 1, "a"), purchase("2026-06-01", 1, "b"), purchase("2026-06-01", 1, "c")])
    bucket = state.buckets[0]
    backwards = b"".join(reversed([bucket.ids[k : k + 8] for k in range(0, 24, 8)]))
    written = codec.dumps(type(state)((bucket._replace(ids=backwards),), state.first_purchase, state.last_purchase))
    read = codec.loads(written)
    assert read == state
    for i in "abc":
        assert apply(read, purchase("2026-06-01", 1, i), day("2026-06-30"), POLICY)[1] is Outcome.DUPLICATE


def test_trailing_bytes_are_refused():
    with pytest.raises(InvalidStateError, match="trailing"):
        codec.loads(codec.dumps(EMPTY) + b"\x00")


def test_amounts_above_the_maximum_are_refused_before_they_are_expanded():
    policy = Policy(max_amount=Decimal(1000))
    assert policy.to_minor(Decimal("1000.00")) == 100_000
    assert policy.check_minor(100_000) == 100_000
    for amount in ("1000.01", "1e400", "1e999999999", "-1e400"):
        with pytest.raises(InvalidEventError, match="above the maximum 1000"):
            policy.to_minor(Decimal(amount))
    with pytest.raises(InvalidEventError, match="above the maximum"):
        policy.check_minor(100_001)
    assert Policy().max_minor == 10**14  # 10^12 in major units, cents
