"""Population ranks: partition summaries merge within the stated error, exact counts where values are few, the
classes of ABC and RFM from them, the hysteresis band, and population changes."""

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from segmenter import step
from segmenter.policy import Policy
from segmenter.population import Population
from segmenter.ranking import AMOUNT, PURCHASES, RECENCY, Ranks, summarise
from segmenter.rules import load_ruleset
from tests.segmenter.helpers import day, purchase

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rules"
ABC = load_ruleset((EXAMPLES / "abc.yaml").read_text())
RFM = load_ruleset((EXAMPLES / "rfm.yaml").read_text())
POLICY = Policy()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=3000), st.integers(1, 8), st.sampled_from([10, 50, 1000]))
def test_merged_partition_summaries_rank_within_half_a_bucket(values, partitions, buckets):
    """Each partition's summary places a value at most half a bucket from its true place: the merged rank is off
    by at most 50 / buckets points."""
    parts = [sorted(values[p::partitions]) for p in range(partitions)]
    merged = Ranks((tuple(summarise(p, buckets) for p in parts), (), ()))
    exact = Ranks.exact(values, [], [])
    assert merged.total == exact.total == len(values)
    for value in {*values[:200], min(values) - 1, max(values) + 1}:
        assert abs(float(merged.rank(AMOUNT, value)) - float(exact.rank(AMOUNT, value))) <= 50 / buckets + 1e-9


def test_few_distinct_values_are_counted_exactly_and_ties_share_a_rank():
    counts = [1] * 50 + [2] * 30 + [5] * 15 + [9] * 5  # 100 customers
    summary = summarise(sorted(counts), 10)
    assert summary.exact
    ranks = Ranks(((summarise([0], 10),), (summary,), ()))
    assert [ranks.rank(PURCHASES, v) for v in (9, 5, 2, 1)] == [0, 5, 20, 50]
    assert [ranks.score(PURCHASES, v) for v in (9, 5, 2, 1)] == [5, 5, 4, 3]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=1, max_size=500), st.sampled_from([0, 5, 20, 50, 99.5]))
def test_the_cutoff_splits_values_at_a_rank(values, boundary):
    ranks = Ranks((tuple(summarise(sorted(values[p::3]), 20) for p in range(3)), (), ()))
    cutoff = ranks.cutoff(AMOUNT, boundary)
    for value in set(values):
        assert (ranks.rank(AMOUNT, value) < boundary) == (cutoff is not None and value >= cutoff)


def _population(amounts: list[int]) -> Population:
    population = Population(POLICY)
    for n, amount in enumerate(amounts):
        population.add(f"C{n:02d}", purchase("2026-05-01", amount, f"e{n}"), day("2026-06-30"))
    return population


def test_offline_abc_is_the_top_20_the_next_50_and_the_last_30_percent():
    population = _population([1000 - 10 * n for n in range(10)])  # C00 buys most
    classes = {c.customer_id: c.segments[0] for c in population.classify(ABC, day("2026-06-30"))}
    assert classes == {**dict.fromkeys(["C00", "C01"], "A"), **dict.fromkeys(["C02", "C03", "C04", "C05", "C06"], "B"),
                       **dict.fromkeys(["C07", "C08", "C09"], "C")}


def test_offline_rfm_scores_recency_frequency_and_money():
    population = Population(POLICY)
    for n in range(10):  # C00 bought last, most often and most; C09 first, least often and least
        for k in range(10 - n):
            population.add(f"C{n:02d}", purchase(f"2026-06-{20 - n:02d}", 100 * (10 - n), f"e{n}-{k}"),
                           day("2026-06-30"))
    cells = {c.customer_id: c.segments[0] for c in population.classify(RFM, day("2026-06-30"))}
    assert cells["C00"] == cells["C01"] == "champions"
    assert cells["C09"] == "lost"
    ranks = population.ranks(day("2026-06-30"))
    assert ranks.cell(day("2026-06-20"), 10, 100_000 * 10) == "555"


def test_the_band_keeps_a_customer_near_the_line_in_its_class_and_population_changes_say_so():
    record, _, _ = step.on_fact(step.CustomerRecord(), purchase("2026-05-01", 500, "e1"), event_id="e1",
                                now_day=day("2026-06-30"), ruleset=ABC, policy=POLICY)
    others = [100_000] * 3 + [100] * 16  # 20 customers with ours: ours ranks 15 % (A) among these
    ranks = Ranks.exact([50_000, *others], [1] * 20, [1] * 20, key="v1")
    assert ranks.rank(AMOUNT, 50_000) == 15
    record, changes = step.on_population(record, day("2026-06-30"), ABC, POLICY, ranks)
    assert dict(record.segments)["abc"] == "A"
    assert (changes[0].cause, changes[0].cause_key) == ("population", "v1")
    # one more big customer and two small ones fewer: ours now ranks 21 %, just outside A
    moved = Ranks.exact([50_000, 100_000, *others[:-2]], [1] * 19, [1] * 19, key="v2")
    assert 20 < moved.rank(AMOUNT, 50_000) < 22
    banded = Ranks(moved.parts, hysteresis=2.0, key="v2")
    held, changes = step.on_population(record, day("2026-06-30"), ABC, POLICY, banded)
    assert dict(held.segments)["abc"] == "A"  # within 2 points of A: kept
    assert changes == []
    plain, changes = step.on_population(record, day("2026-06-30"), ABC, POLICY, moved)
    assert dict(plain.segments)["abc"] == "B"
    assert (changes[0].before, changes[0].after, changes[0].cause) == ("A", "B", "population")


def test_rankless_customers_fall_to_the_default_and_recency_ranks_later_days_higher():
    ranks = Ranks.exact([1, 2, 3, 4, 5], [1] * 5, [10, 20, 30, 40, 50])
    assert ranks.score(RECENCY, 50) == 5
    assert ranks.score(RECENCY, 10) == 1
    record, _ = step.on_time(step.CustomerRecord(), day("2026-06-30"), ABC, POLICY, ranks)
    assert dict(record.segments)["abc"] == "no_purchase_12m"
