"""The incremental state against a brute-force recomputation from the raw event list."""

from __future__ import annotations

from datetime import date
from fractions import Fraction
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from segmenter import codec
from segmenter.classify import classify, classify_values, due_day
from segmenter.encoder import StateEncoder
from segmenter.metrics import POPULATION_METRICS, compute, metric_view
from segmenter.policy import Policy
from segmenter.rules import load_ruleset
from segmenter.state import EMPTY, INTERACTION, PURCHASE, REFUND, Fact, Outcome, advance, apply, totals_at
from segmenter.timebase import WindowSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rules"
RULESETS = [load_ruleset(p.read_text()) for p in sorted(EXAMPLES.glob("*.yaml"))]
BASE = date(2024, 1, 1).toordinal()
POLICIES = [Policy(), Policy(long_window=WindowSpec(365, "d"), short_window=WindowSpec(90, "d"))]

CATEGORIES = ["", "", "图书", "electronics", "食品", "服装 / 鞋"]
fact_st = st.builds(
    lambda d, kind, amount, ident, flags, sat, category, profit: Fact(
        BASE + d, kind, amount, ident.to_bytes(8, "big"), flags == 1, flags == 2, sat,
        category if kind != INTERACTION else "", profit if kind != INTERACTION else None),
    st.integers(0, 900), st.sampled_from([PURCHASE, PURCHASE, REFUND, INTERACTION]),
    st.integers(0, 500_000), st.integers(0, 60), st.integers(0, 2), st.integers(0, 5),
    st.sampled_from(CATEGORIES), st.one_of(st.none(), st.integers(-50_000, 200_000)),
)
CATEGORY_RULES = load_ruleset("""
id: preference
version: 1
dimensions:
  preference:
    segments:
      - name: 图书
        when: category_amount_12m('图书') >= 1000 and category_purchases_12m('图书') >= 2
      - name: profitable
        when: margin_12m >= 0.25 or profit_12m - 500 > category_amount_12m('electronics') / 2
      - name: shoes
        when: top_category_12m == '服装 / 鞋'
    default: other
""")
# a step is an event, or a pure passage of time (advance), as the stream sees it
step_st = st.one_of(fact_st, st.integers(1, 200).map(lambda n: ("tick", n)))


def brute_force(steps, policy):
    """Replay the raw list: an event counts if new and inside the horizon when it arrived; every
    purchase, however late, still dates the first and last purchase."""
    now, counted, seen, buys = BASE, [], set(), []
    for step in steps:
        if not isinstance(step, Fact):
            now += step[1]
            continue
        now = max(now, step.day)
        too_old = step.day < policy.horizon_start(now)
        if not too_old and (step.day, step.id_hash) in seen:
            continue  # a duplicate is the same event again: it dates nothing
        if step.kind == PURCHASE:
            buys.append(step.day)
        if too_old:
            continue
        seen.add((step.day, step.id_hash))
        counted.append(step)
    return now, (counted, buys)


def brute_metrics(replayed, as_of, policy):
    counted, buys = replayed
    lo, so = policy.long_start(as_of), policy.short_start(as_of)
    long_ = [f for f in counted if lo <= f.day <= as_of]
    short = [f for f in counted if so <= f.day <= as_of]
    before = [f for f in counted if lo <= f.day < so]  # the previous period: in the long window, before the short

    def money(fs):
        return sum(f.amount if f.kind == PURCHASE else -f.amount for f in fs if f.kind != INTERACTION)

    def n(fs, kind):
        return sum(1 for f in fs if f.kind == kind)

    sats = [f.satisfaction for f in long_ if f.kind == INTERACTION and f.satisfaction]
    sign = {PURCHASE: 1, REFUND: -1}
    priced = [f for f in long_ if f.kind != INTERACTION and f.profit is not None]
    profited = sum(sign[f.kind] * f.amount for f in priced)
    cats: dict[str, list[int]] = {}
    for f in long_:
        if f.kind != INTERACTION and f.category:
            held = cats.setdefault(f.category, [0, 0])
            held[0] += f.kind == PURCHASE
            held[1] += sign[f.kind] * f.amount
    top = min(((c, v) for c, v in cats.items() if v[0] > 0), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]),
              default=None)  # among the categories bought in the window
    p12 = n(long_, PURCHASE)
    return {
        "purchases_12m": p12, "amount_12m": money(long_), "purchases_6m": n(short, PURCHASE),
        "amount_6m": money(short), "purchases_prev_6m": n(before, PURCHASE), "amount_prev_6m": money(before),
        "avg_order_value_12m": Fraction(money(long_), p12) if p12 else None,
        "refunds_12m": n(long_, REFUND),
        "days_since_last_purchase": as_of - max(buys) if buys else None,
        "days_since_first_purchase": as_of - min(buys) if buys else None,
        "interactions_12m": n(long_, INTERACTION), "interactions_6m": n(short, INTERACTION),
        "complaints_6m": sum(1 for f in short if f.kind == INTERACTION and f.complaint),
        "satisfaction_avg_12m": Fraction(sum(sats), len(sats)) if sats else None,
        "referrals_12m": sum(1 for f in long_ if f.kind == INTERACTION and f.referral),
        "profit_12m": sum(sign[f.kind] * f.profit for f in priced) if priced else None,
        "margin_12m": Fraction(sum(sign[f.kind] * f.profit for f in priced), profited) if profited > 0 else None,
        "top_category_12m": None if top is None else top[0],
        **{f"category_amount_12m({c!r})": cats.get(c, [0, 0])[1] for c in CATEGORIES if c},
        **{f"category_purchases_12m({c!r})": cats.get(c, [0, 0])[0] for c in CATEGORIES if c},
        "profile.type": None, "profile.region": None, "profile.industry": None, "profile.size": None,
        **dict.fromkeys(POPULATION_METRICS),  # no population given: no rank
    }


def incremental(steps, policy, look_every_step=False):
    now, state = BASE, EMPTY
    for step in steps:
        if look_every_step:  # read metrics as the worker does: memoised totals roll forward
            compute(state, now, policy)
        if not isinstance(step, Fact):
            now += step[1]
            state = advance(state, now, policy)
            continue
        now = max(now, step.day)
        state, _ = apply(state, step, now, policy)
    return now, state


@settings(max_examples=300, deadline=None)
@given(st.lists(step_st, max_size=60), st.integers(0, 400), st.sampled_from(POLICIES), st.booleans())
def test_incremental_metrics_and_segments_equal_brute_force(steps, later, policy, look):
    now, state = incremental(steps, policy, look)
    now_b, counted = brute_force(steps, policy)
    assert now == now_b
    as_of = now + later
    expected = brute_metrics(counted, as_of, policy)
    assert metrics_of(state, as_of, policy) == expected
    assert metrics_of(advance(state, as_of, policy), as_of, policy) == expected
    for ruleset in [*RULESETS, CATEGORY_RULES]:
        assert classify(ruleset, state, as_of, policy) == classify_values(ruleset, expected)


def metrics_of(state, as_of, policy):
    """Every metric, with each category's uses (``compute`` lists the metrics without an argument)."""
    view = metric_view(state, as_of, policy)
    return {**compute(state, as_of, policy), **{name: view[name] for name in _CATEGORY_METRICS}}


_CATEGORY_METRICS = [f"{family}({c!r})" for family in ("category_amount_12m", "category_purchases_12m")
                     for c in CATEGORIES if c]


@settings(max_examples=200, deadline=None)
@given(st.lists(fact_st.map(lambda f: f._replace(day=BASE + 600 + (f.day - BASE) % 300)), max_size=40))
def test_duplicates_and_order_do_not_matter_inside_the_window(facts):
    facts = [f._replace(id_hash=i.to_bytes(8, "big")) for i, f in enumerate(facts)]  # one id, one event
    policy = Policy()
    now = BASE + 900  # every fact dated in the last 300 days is inside the horizon
    forward, backward = EMPTY, EMPTY
    for f in facts + facts:
        forward, _ = apply(forward, f, now, policy)
    for f in reversed(facts):
        backward, outcome = apply(backward, f, now, policy)
        assert outcome is not Outcome.TOO_OLD
    assert metrics_of(forward, now, policy) == metrics_of(backward, now, policy)


@settings(max_examples=200, deadline=None)
@given(st.lists(step_st, max_size=60))
def test_serialised_state_round_trips(steps):
    _, state = incremental(steps, Policy())
    assert codec.loads(codec.dumps(state)) == state


@settings(max_examples=200, deadline=None)
@given(st.lists(step_st, max_size=60), st.integers(1, 4), st.integers(1, 6))
def test_state_encoder_writes_what_dumps_writes_flush_after_flush(steps, min_buckets, every):
    """The worker encodes each changed customer at every flush, re-encoding only the days after the
    prefix it kept: whatever happened in between (new days, out-of-order days, days leaving the
    window, refunds), the bytes are those of a full encoding."""
    encoder, tiny = StateEncoder(min_buckets=min_buckets), StateEncoder(min_buckets=1, max_bytes=64)
    policy, now, state = Policy(), BASE, EMPTY
    for n, step in enumerate(steps):
        state, now = _moved(state, now, step, policy)
        if n % every == 0:  # a flush
            expected = codec.dumps(state)
            assert encoder.dumps("C1", state) == expected
            assert tiny.dumps("C1", state) == expected  # its memory bound forgets, often


@given(st.lists(st.tuples(step_st, st.booleans(), st.booleans()), max_size=60), st.integers(0, 400))
def test_state_encoder_reuses_a_state_read_back_only_while_it_is_unchanged(steps, max_bytes):
    """A customer read back from the store (``read``: the decoded state and the bytes it came from), then written at
    a flush: unchanged, the stored bytes are reused; changed since, or forgotten, encoded afresh. Always what dumps
    writes, whatever the memory bound drops."""
    encoder = StateEncoder(min_buckets=2, max_bytes=max_bytes)
    policy, now, state = Policy(), BASE, EMPTY
    for step, read_back, moves in steps:
        if read_back:  # evicted after a flush and read back: a decoded copy, its bytes kept
            stored = codec.dumps(state)
            state = codec.loads(stored)
            encoder.read("C1", state, stored)
            if not moves and max_bytes >= len(stored) + 100:
                assert encoder.dumps("C1", state) is stored  # not encoded again
                continue
        if moves:
            state, now = _moved(state, now, step, policy)
        assert encoder.dumps("C1", state) == codec.dumps(state)
        assert len(encoder) <= 1


def _moved(state, now, step, policy):
    """``state`` and the day after one step: a fact applied, or days passing."""
    if isinstance(step, Fact):
        now = max(now, step.day)
        return apply(state, step, now, policy)[0], now
    now += step[1]
    return advance(state, now, policy), now


def test_state_encoder_forgets_a_state_read_back():
    encoder, state = StateEncoder(), codec.loads(codec.dumps(EMPTY))
    encoder.read("C1", state, b"stored")
    assert "C1" in encoder
    encoder.forget("C1")
    assert "C1" not in encoder
    assert len(encoder) == 0
    assert encoder.dumps("C1", state) == codec.dumps(state)  # not the forgotten bytes


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(step_st, max_size=40),  # and many days inside a short window:
                 st.lists(fact_st.map(lambda f: f._replace(day=BASE + (f.day - BASE) % 120)), max_size=30)),
       st.integers(0, 300), st.sampled_from(POLICIES), st.booleans())
def test_nothing_a_wake_up_would_show_changes_before_the_due_day(steps, later, policy, amounts):
    """``due_day`` with the current classification (what the worker asks) is never late: neither the
    segments, nor the tags whose conditions read time (``judge_totals``), nor with ``track_amount``, the
    amount_12m the projection keeps move before it."""
    now, state = incremental(steps, policy)
    as_of = now + later
    assert any(r.tag_conditions for r in RULESETS)  # the shipped examples include tags by condition

    def judged(ruleset, d):
        t = totals_at(state, d, policy)
        return ruleset.judge_totals(t.long, t.short, state.first_purchase, state.last_purchase, d, {}, None, t.extra)

    for ruleset in [*RULESETS, CATEGORY_RULES]:
        current = judged(ruleset, as_of)
        assert current[:len(ruleset.dimensions)] == classify(ruleset, state, as_of, policy)
        amount = compute(state, as_of, policy)["amount_12m"]
        due = due_day(ruleset, state, as_of, policy, track_amount=amounts, current=current)
        assert due is None or due > as_of
        for d in range(as_of + 1, min(due or as_of + 800, as_of + 800)):
            assert judged(ruleset, d) == current, (ruleset.id, d, due)
            if amounts:
                assert compute(state, d, policy)["amount_12m"] == amount, (ruleset.id, d, due)


@settings(max_examples=300, deadline=None)
@given(st.lists(step_st, max_size=40), st.integers(-300, 900), st.sampled_from(POLICIES))
def test_window_sums_read_straight_from_the_bytes_equal_the_decoded_states(steps, offset, policy):
    """``codec.sums`` (what ``rules preview`` reads) equals ``totals_at`` of the decoded state, on any day."""
    now, state = incremental(steps, policy)
    as_of = now + offset
    data = codec.dumps(state)
    decoded = codec.loads(data)
    t = totals_at(decoded, as_of, policy)
    long_start, short_start, _ = policy.starts(as_of)
    assert codec.sums(data, as_of, long_start, short_start) == (t.long, t.short, decoded.first_purchase,
                                                                 decoded.last_purchase, t.extra)
