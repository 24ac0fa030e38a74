"""The Quix Streams peer computes what segmenter computes: its windows and rules (bench/peers/quix_rules.py)
against segmenter's core over random histories. A peer that computes something else is no peer."""

from datetime import date

from hypothesis import example, given, settings
from hypothesis import strategies as st

from bench.peers.quix_rules import LONG_MONTHS, SHORT_MONTHS, fold, months_back, segment, totals
from bench.stream import RULES
from segmenter.classify import classify
from segmenter.policy import Policy
from segmenter.rules import load_ruleset
from segmenter.state import EMPTY, PURCHASE, REFUND, Fact, advance, apply
from segmenter.timebase import WindowSpec

RULESET = load_ruleset(RULES)
POLICY = Policy()
FIRST, LAST = date(2023, 1, 1).toordinal(), date(2026, 12, 31).toordinal()


@given(st.integers(FIRST, LAST))
def test_windows_start_where_segmenter_starts_them(day):
    assert months_back(day, LONG_MONTHS) == WindowSpec(12, "m").start_day(day)
    assert months_back(day, SHORT_MONTHS) == WindowSpec(6, "m").start_day(day)


# (day offset, refund, cents): many purchases cluster in the last weeks, so every segment is reached
events = st.lists(st.tuples(st.one_of(st.integers(0, 400), st.integers(370, 400)),
                            st.sampled_from([False] * 9 + [True]), st.integers(1, 400_000)), max_size=60)
AT_THE_BOUNDARY = [(390 + n, False, 100_000) for n in range(10)]  # 10 purchases, exactly 10,000.00: high value


@settings(max_examples=300, deadline=None)
@given(events, st.integers(0, 700))
@example(AT_THE_BOUNDARY, 0)
@example([*AT_THE_BOUNDARY[:-1], (399, False, 99_999)], 0)  # a cent short: mid value
@example(AT_THE_BOUNDARY, 183)  # six months on: churn risk
def test_the_peers_segment_is_segmenters_classification(history, later):
    """Events in day order (offsets from FIRST; refunds among them) folded in by segmenter's core and by the peer's
    ``fold``, then both classify as of ``later`` days after the last one."""
    state, buckets, now = EMPTY, [], FIRST
    for n, (offset, refund, cents) in enumerate(sorted(history)):
        day = now = FIRST + offset
        fact = Fact(day, REFUND if refund else PURCHASE, cents, (n + 1).to_bytes(8, "big"))
        state, _ = apply(state, fact, now, POLICY)
        folded = fold(buckets, day, not refund, cents, now)  # the peer's own fold
        assert folded is not None  # an event dated at the stream day is never too old
        buckets = folded
    as_of = now + later
    expected = classify(RULESET, advance(state, as_of, POLICY), as_of, POLICY)[0]
    assert segment(*totals(buckets, as_of)) == expected
