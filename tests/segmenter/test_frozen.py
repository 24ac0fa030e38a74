"""``segmenter.frozen.Frozen``, the base of a change, a tag change and an explanation: equal by class and fields,
hashed by them, shown by them."""

from __future__ import annotations

import pytest

from segmenter.classify import Explanation
from segmenter.step import Change, TagChange


def _why(segment: str = "high_value") -> Explanation:
    return Explanation("value", segment, "amount_12m >= 10000", {"amount_12m": 12000}, ("churn_risk: needs x",))


def test_equal_by_class_and_fields():
    assert _why() == _why()
    assert _why() != _why("mid_value")
    change = Change("value", None, "high_value", "event", "e1", explanation=_why())
    assert change == Change("value", None, "high_value", "event", "e1", explanation=_why())
    assert change != Change("value", None, "high_value", "event", "e2", explanation=_why())
    tag = TagChange("vip", True, "manual", "t1", "x", metrics={})
    assert tag != TagChange("vip", False, "manual", "t1", "x", metrics={})
    assert tag != ("vip", True, "manual", "t1", "x", {})  # not a tuple of its fields


def test_hashed_by_fields_when_they_are_hashable():
    left = Explanation("value", "low_value", "default", (), ())  # type: ignore[arg-type]  # a hashable stand-in
    assert hash(left) == hash(Explanation("value", "low_value", "default", (), ()))  # type: ignore[arg-type]
    assert len({left, Explanation("value", "low_value", "default", (), ())}) == 1  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        hash(_why())  # its metrics are a dict, as with the frozen dataclass it replaced


def test_repr_names_every_field():
    assert repr(TagChange("vip", True, "manual", "t1", "x", metrics={})) == (
        "TagChange(tag='vip', added=True, cause='manual', cause_key='t1', condition='x', metrics={})")
