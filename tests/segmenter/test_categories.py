"""Product categories (购买类别) and profit (利润率) in the windows: the bound per customer, the window's edge,
refunds, the stored form, and tag names that copy the customer's top category."""

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from segmenter import codec, step
from segmenter.errors import InvalidStateError
from segmenter.extras import OTHER
from segmenter.metrics import compute, metric_view
from segmenter.policy import Policy
from segmenter.rules import load_ruleset
from segmenter.state import EMPTY, PURCHASE, REFUND, Fact, apply, hash_event_id
from tests.segmenter.helpers import day

POLICY = Policy()


def _tx(when: str, amount: int, event_id: str, category: str = "", *, profit: int | None = None,
        kind: int = PURCHASE) -> Fact:
    return Fact(day(when), kind, amount * 100, hash_event_id(event_id), category=category,
                profit=None if profit is None else profit * 100)


def _fold(facts, policy=POLICY, now="2026-06-30"):
    state = EMPTY
    for fact in facts:
        state, _ = apply(state, fact, day(now), policy)
    return state


def _cats(state, policy=POLICY, now="2026-06-30"):
    view = metric_view(state, day(now), policy)
    return {name: (view[f"category_purchases_12m({name!r})"], view[f"category_amount_12m({name!r})"])
            for name in ("图书", "玩具", "食品", "园艺", OTHER)}


def test_the_categories_of_the_greatest_amount_keep_their_names_and_the_rest_count_as_other():
    policy = Policy(max_categories=2)
    state = _fold([_tx("2026-01-05", 100, "a", "图书"), _tx("2026-01-06", 50, "b", "玩具")], policy)
    state, _ = apply(state, _tx("2026-02-01", 80, "c", "食品"), day("2026-06-30"), policy)
    # 食品 (80) beat 玩具 (50), the least held: 玩具's purchases and amount now count as OTHER
    assert _cats(state, policy) == {"图书": (1, 10000), "玩具": (0, 0), "食品": (1, 8000), "园艺": (0, 0),
                                    OTHER: (1, 5000)}
    state, _ = apply(state, _tx("2026-03-01", 10, "d", "园艺"), day("2026-06-30"), policy)
    # 园艺 (10) does not beat 食品 (80): it counts as OTHER at once
    assert _cats(state, policy) == {"图书": (1, 10000), "玩具": (0, 0), "食品": (1, 8000), "园艺": (0, 0),
                                    OTHER: (2, 6000)}
    values = compute(state, day("2026-06-30"), policy)
    assert values["top_category_12m"] == "图书"
    assert values["purchases_12m"] == 4
    assert values["amount_12m"] == 24000
    assert codec.loads(codec.dumps(state)) == state


def test_categories_and_profit_leave_with_the_window_and_refunds_take_back():
    state = _fold([_tx("2025-05-01", 300, "old", "玩具", profit=90),
                   _tx("2026-03-01", 200, "a", "图书", profit=50),
                   _tx("2026-03-02", 100, "b", "图书"),  # no profit given: not in the margin
                   _tx("2026-03-03", 50, "r", "图书", profit=10, kind=REFUND)], now="2026-03-03")
    values = compute(state, day("2026-06-30"), POLICY)
    assert _cats(state)["图书"] == (2, 25000)
    assert _cats(state)["玩具"] == (0, 0)
    assert values["profit_12m"] == 4000  # 50 - 10: the refund takes its profit back
    assert values["margin_12m"] * 15000 == 4000  # over the amounts that carried a profit: 200 - 50
    assert values["top_category_12m"] == "图书"
    early = compute(state, day("2026-04-01"), POLICY)
    assert early["profit_12m"] == 13000
    assert early["top_category_12m"] == "玩具"
    assert compute(state, day("2025-06-01"), POLICY)["top_category_12m"] == "玩具"


def test_a_customer_without_categories_or_profit_has_no_value_and_is_stored_as_before():
    state = _fold([_tx("2026-03-01", 200, "a")])
    values = compute(state, day("2026-06-30"), POLICY)
    assert (values["profit_12m"], values["margin_12m"], values["top_category_12m"]) == (None, None, None)
    assert codec.dumps(state)[0] == 1  # format 1: no extras section
    assert codec.dumps(_fold([_tx("2026-03-01", 200, "a", "图书")]))[0] == 2


RULES = load_ruleset("""
id: preference
version: 1
dimensions:
  books:
    segments:
      - {name: 书迷, when: "category_amount_12m('图书') >= 500"}
    default: other
tags:
  - name: 偏好:{top_category_12m}
""")


def test_a_tag_name_copies_the_top_category_and_moves_with_it():
    record, changes, _ = step.on_fact(step.CustomerRecord(), _tx("2026-03-01", 300, "a", "图书"), event_id="a",
                                      now_day=day("2026-03-01"), ruleset=RULES, policy=POLICY)
    assert record.tags == ("偏好:图书",)
    assert dict(record.segments)["books"] == "other"
    record, changes, _ = step.on_fact(record, _tx("2026-03-02", 400, "b", "玩具"), event_id="b",
                                      now_day=day("2026-03-02"), ruleset=RULES, policy=POLICY)
    assert record.tags == ("偏好:玩具",)
    tags = sorted((c.tag, c.added, c.cause) for c in changes if isinstance(c, step.TagChange))
    assert tags == [("偏好:图书", False, "event"), ("偏好:玩具", True, "event")]
    record, changes, _ = step.on_fact(record, _tx("2026-03-03", 250, "c", "图书"), event_id="c",
                                      now_day=day("2026-03-03"), ruleset=RULES, policy=POLICY)
    assert dict(record.segments)["books"] == "书迷"
    assert record.tags == ("偏好:图书",)
    (moved,) = [c for c in changes if isinstance(c, step.Change)]
    assert (moved.before, moved.after) == ("other", "书迷")
    assert moved.explanation.metrics == {"category_amount_12m('图书')": Decimal("550.00")}


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_damaged_state_with_categories_is_refused_as_invalid_never_misread(data):
    state = _fold([_tx("2026-03-01", 200, "a", "图书", profit=50), _tx("2026-03-05", 20, "b", "玩具"),
                   _tx("2026-04-01", 80, "c", "食品", profit=-5)])
    blob = bytearray(codec.dumps(state))
    for _ in range(data.draw(st.integers(1, 3))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    try:
        read = codec.loads(bytes(blob))
    except InvalidStateError:
        return
    days = [e.day for e in read.extras]
    assert days == sorted(set(days))  # whatever reads is a state the core could have made
    for e in read.extras:
        names = [c[0] for c in e.cats]
        assert names == sorted(set(names))
        assert all(n >= 0 for _, n, _ in e.cats)
