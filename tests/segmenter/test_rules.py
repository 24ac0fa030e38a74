import json
import re
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmenter.errors import InvalidRuleError
from segmenter.metrics import METRICS, called, metric_info
from segmenter.ranking import Ranks
from segmenter.rules import compiler, conditions, load_ruleset
from segmenter.rules.check import check_ruleset

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rules"
RETAIL = (EXAMPLES / "retail-value.yaml").read_text()


def ruleset_with(when: str, extra: str = "") -> str:
    return f"""id: t
version: 1
dimensions:
  d:
    segments:
      - name: s
        when: {when}
{extra}    default: other
"""


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_ruleset_loads(path):
    ruleset = load_ruleset(path.read_text(), path.name)
    assert ruleset.dimensions
    assert ruleset.version >= 1


def test_misspelt_metric_names_the_position_and_suggests():
    text = RETAIL.replace("amount_12m >= 10000", "amout_12m >= 10000")
    with pytest.raises(InvalidRuleError, match=r"^retail.yaml:13:39: dimension 'value', segment 'high_value', "
                       r"column 25: unknown metric 'amout_12m' \(did you mean 'amount_12m'\?\)$"):
        load_ruleset(text, "retail.yaml")


@pytest.mark.parametrize(("when", "message"), [
    ("purchases_12m >", "column 16: expected a metric, a number or a quoted string, found the end"),
    ("purchases_12m >= 1 andd x", "column 20: expected 'and', 'or' or the end, found 'andd'"),
    ("(purchases_12m >= 1", r"column 20: expected '\)'"),
    ("purchases_12m", "column 14: expected a comparison"),
    ("purchases_12m >= 'ten'", "purchases_12m is a number"),
    ("profile.region > 'east'", "profile.region is text: only ==, != and 'in'"),
    ("profile.region == 3", "profile.region is text: compare it with a quoted string"),
    ("3 > 4", "compares two constants"),
    ("purchases_12m >= 1 ; drop", "column 20: unexpected character ';'"),
    ("purchases_12m in [1, purchases_6m]", "a list holds constants"),
])
def test_bad_conditions_are_refused_with_column_and_reason(when, message):
    with pytest.raises(InvalidRuleError, match=message):
        load_ruleset(ruleset_with(when), "r.yaml")


def test_structure_errors_point_at_the_yaml_line():
    text = RETAIL.replace("version: 1", "version: one")
    with pytest.raises(InvalidRuleError, match=r"retail.yaml:3:10: version: Input should be a valid integer"):
        load_ruleset(text, "retail.yaml")


def test_duplicate_keys_and_segments_are_refused():
    with pytest.raises(InvalidRuleError, match="duplicate key 'version'"):
        load_ruleset("id: a\nversion: 1\nversion: 2\n", "r.yaml")
    dup = ruleset_with("purchases_12m > 1", "      - name: s\n        when: purchases_12m > 2\n")
    with pytest.raises(InvalidRuleError, match="segment 's': duplicate segment name"):
        load_ruleset(dup, "r.yaml")


def test_invalid_yaml_reports_its_line():
    with pytest.raises(InvalidRuleError, match=r"r.yaml:2:\d+: not valid YAML"):
        load_ruleset("id: a\n  version: [1\n", "r.yaml")


def test_a_python_name_in_a_condition_is_refused_as_an_unknown_metric():
    with pytest.raises(InvalidRuleError, match="unknown metric '__import__'"):
        load_ruleset(ruleset_with("__import__ == 'os'"), "r.yaml")


def test_retail_check_reports_the_uncovered_regions():
    (report,) = check_ruleset(load_ruleset(RETAIL))
    assert report.gaps == [
        "purchases_12m == 0",
        "purchases_6m >= 1 and 1 <= purchases_12m <= 4 and amount_12m >= 5000",
        "purchases_6m >= 1 and 5 <= purchases_12m <= 9 and amount_12m < 5000",
        "purchases_6m >= 1 and 5 <= purchases_12m <= 9 and amount_12m >= 10000",
    ]
    assert report.unreachable == []


@pytest.mark.parametrize("scale", [0, 3])
def test_check_speaks_in_major_units_at_any_money_scale(scale):
    (report,) = check_ruleset(load_ruleset(RETAIL, "retail.yaml", scale))
    assert "purchases_6m >= 1 and 1 <= purchases_12m <= 4 and amount_12m >= 5000" in report.gaps
    assert "purchases_6m >= 1 and 5 <= purchases_12m <= 9 and amount_12m < 5000" in report.gaps


def test_check_reports_shadowed_and_impossible_segments():
    text = """id: t
version: 1
dimensions:
  d:
    segments:
      - {name: any, when: purchases_12m >= 0}
      - {name: big, when: purchases_12m >= 10}
      - {name: never, when: purchases_12m > 5 and purchases_12m < 3}
    default: other
"""
    (report,) = check_ruleset(load_ruleset(text))
    assert report.gaps == []
    assert report.unreachable == [
        "big: never wins, an earlier segment ('any') always matches first",
        "never: its condition can never be true",
    ]


def test_check_handles_text_and_missing_values():
    text = """id: t
version: 1
dimensions:
  d:
    segments:
      - {name: east, when: "profile.region in ['east', 'north']"}
      - {name: recent, when: days_since_last_purchase <= 30}
    default: other
"""
    (report,) = check_ruleset(load_ruleset(text))
    assert report.gaps == ["(profile.region not in ['east', 'north'] or profile.region has no value) and "
                           "(days_since_last_purchase >= 31 or days_since_last_purchase has no value)"]


_EXAMPLE_RULESETS = [load_ruleset(p.read_text(), p.name) for p in sorted(EXAMPLES.glob("*.yaml"))]
_NUMBERS = st.one_of(st.none(), st.integers(-5, 2_000_000), st.fractions(0, 20, max_denominator=7))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_EXAMPLE_RULESETS), st.data())
def test_the_fused_classifier_agrees_with_each_dimensions_first_match(ruleset, data):
    values = {}
    for name in sorted({*METRICS, *ruleset.metrics}):  # the ruleset's own family uses too: category_amount_12m('图书')
        kind = metric_info(name).kind
        if kind == "text":
            values[name] = data.draw(st.one_of(st.none(), st.sampled_from(["individual", "enterprise", "north",
                                                                                "east", "retail", "large", "x"])))
        else:  # near the rules' own constants half the time, anywhere the rest
            near = sorted({c for dim in ruleset.dimensions for seg in dim.segments for a in seg.atoms
                           if a.metric == name for c in (a.value if isinstance(a.value, tuple) else (a.value,))
                           if not isinstance(c, str)})
            pick = st.sampled_from(near).flatmap(lambda c: st.sampled_from([c - 1, c, c + 1])) if near else st.none()
            values[name] = data.draw(st.one_of(pick, _NUMBERS))
    assert ruleset.classify_all(values) == tuple(dim.classify(values) for dim in ruleset.dimensions)


_COUNTS = st.integers(0, 40)
_SUMS = st.integers(-50_000, 5_000_000)
_DAYS = st.one_of(st.none(), st.integers(739_000, 739_400))


_TOTALS = st.tuples(
    st.tuples(_COUNTS, _SUMS, _COUNTS, _COUNTS, _COUNTS, _COUNTS, _COUNTS), st.tuples(_COUNTS, _SUMS, _COUNTS, _COUNTS),
    _DAYS, _DAYS, st.integers(739_300, 739_800),
    st.dictionaries(st.sampled_from(["profile.type", "profile.region", "profile.industry", "profile.size"]),
                    st.sampled_from(["individual", "enterprise", "north", "east", "retail", "large", None])))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_EXAMPLE_RULESETS), _TOTALS)
def test_the_classifier_over_window_totals_agrees_with_the_one_over_metric_values(ruleset, totals):
    lo, sh, first, last, as_of, profile = totals
    values = {  # the metrics' definitions, written out independently of metrics.SOURCES
        "purchases_12m": lo[0], "amount_12m": lo[1], "refunds_12m": lo[2], "interactions_12m": lo[3],
        "referrals_12m": lo[4], "satisfaction_avg_12m": Fraction(lo[5], lo[6]) if lo[6] else None,
        "avg_order_value_12m": Fraction(lo[1], lo[0]) if lo[0] else None,
        "purchases_6m": sh[0], "amount_6m": sh[1], "interactions_6m": sh[2], "complaints_6m": sh[3],
        "purchases_prev_6m": lo[0] - sh[0], "amount_prev_6m": lo[1] - sh[1],
        "days_since_last_purchase": None if last is None else as_of - last,
        "days_since_first_purchase": None if first is None else as_of - first,
        **{name: profile.get(name) for name in ("profile.type", "profile.region", "profile.industry", "profile.size")},
        "profit_12m": None, "margin_12m": None, "top_category_12m": None,  # no transaction carried either
    }
    amounts, counts, lasts = [lo[1], 0, 50_000, 50_000, 10**7], [lo[0], 1, 3, 3, 12], [last or 0, 10, 20, 20, 30]

    def rank(population, value):  # share strictly above, in percent
        return Fraction(100 * sum(1 for v in population if v > value), len(population))

    def score(population, value):
        return 5 - min(4, int(rank(population, value) // 20))

    member = lo[0] > 0 and last is not None
    values |= {"amount_12m_rank_pct": rank(amounts, lo[1]) if member else None,
               "purchases_12m_rank_pct": rank(counts, lo[0]) if member else None,
               "rfm_r": score(lasts, last) if member else None, "rfm_f": score(counts, lo[0]) if member else None,
               "rfm_m": score(amounts, lo[1]) if member else None,
               "rfm_score": f"{score(lasts, last)}{score(counts, lo[0])}{score(amounts, lo[1])}" if member else None}
    assert values.keys() == METRICS.keys()
    values |= {name: 0 for name in ruleset.metrics if called(name)}  # a category bought in: none
    population = Ranks.exact(amounts, counts, lasts)
    assert ruleset.classify_totals(lo, sh, first, last, as_of, profile, population) == ruleset.classify_all(values)


@pytest.mark.parametrize(("when", "message"), [
    ("__class__ == 1", "unknown metric '__class__'"),
    ("amount_12m.__class__ > 1", "unknown metric 'amount_12m.__class__'"),
    ("profile.__dict__ == 'x'", "unknown metric 'profile.__dict__'"),
    ("len(amount_12m) > 1", "column 1: 'len' takes no argument"),
    ("category_amount_12m(amount_12m) > 1", "column 21: expected a quoted category"),
    ("category_amount_12m > 1", "column 21: category_amount_12m takes a category"),
    ("category_amount_12m('') > 1", "a category is 1 to 256 printable characters"),
    ("category_amount_12m('a\x00b') > 1", "a category is 1 to 256 printable characters"),
    ("category_amount_12m('x', 'y') > 1", "expected ')' after the category"),
    ("category_amount_12m('" + "x" * 300 + "') > 1", "a category is 1 to 256 printable characters"),
    ("__import__('os').system('ls') == 0", "column 17: unexpected character '.'"),
    ("amount_12m > 1; import os", "column 15: unexpected character ';'"),
    ("lambda: 1", "unexpected character ':'"),
    ("amount_12m > 1" + "0" * 100_000, "at most 4,000 characters"),
    ("amount_12m > 1" + "0" * 30, "column 14: a number of 31 characters; at most 24 digits"),
    ("amount_12m > 1" + "0" * 24, "column 14: a number of 25 characters; at most 24 digits"),
    ("(" * 40 + "amount_12m > 1" + ")" * 40, "nested more than 32 deep"),
    ("not " * 40 + "amount_12m > 1", "nested more than 32 deep"),
], ids=["dunder", "attribute", "profile-dunder", "call", "category-of-a-metric", "category-missing",
        "category-empty", "category-control", "category-two", "category-huge", "import", "statement", "lambda",
        "long", "huge-number", "25-digits", "parentheses", "not"])
def test_hostile_rule_text_is_refused_with_its_column_before_any_code_is_generated(when, message, monkeypatch):
    generated = []
    for module in (conditions, compiler):  # each condition's code, and the ruleset's fused function
        monkeypatch.setattr(module, "_checked", lambda source, bound: generated.append(source) or source)
    with pytest.raises(InvalidRuleError, match=re.escape(message)):
        load_ruleset(ruleset_with(json.dumps(when)), "r.yaml")
    assert generated == []


@pytest.mark.parametrize("source", [
    "lambda v: v.__class__", "lambda v: __import__('os')", "lambda v: open('f')", "lambda v: [c for c in v]",
    "lambda v: p.system('x')", "lambda v: 1.5", "lambda v: (lambda: 1)()",
])
def test_generated_code_outside_what_the_generator_makes_is_refused(source):
    with pytest.raises(ValueError, match="generated rule code refused"):
        conditions._checked(source, {})


def test_the_generated_code_of_every_example_passes_the_check():
    for ruleset in _EXAMPLE_RULESETS:
        for dim in ruleset.dimensions:
            for segment in dim.segments:
                assert conditions._checked(f"lambda v: {segment.source}", segment.constants)
