"""Product categories and profit (产品偏好, 利润率) beside a customer's day buckets (``segmenter.state``).

``Extra`` entries are kept only for the days whose transactions carried a category or a profit, so a customer
whose transactions carry neither costs nothing more. Categories are bounded per customer: the ``max_categories``
of the greatest amount in the long window keep their names, the rest count together as ``OTHER``.
``ExtraSums`` is their long-window sum, derived like the state's ``Totals`` and kept beside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from segmenter.state import Fact

new_tuple = tuple.__new__  # a NamedTuple without its Python-level __new__ (as in ``segmenter.state``)

OTHER = "(other)"
"""The category a purchase counts under when its customer already has ``max_categories`` others in the state."""


class Extra(NamedTuple):
    """The categories and profit of one business day's transactions (only for days that had any)."""

    day: int
    profit: int = 0  # net of refunds, minor units
    profited: int = 0  # the amount of the transactions that carried a profit, net of refunds
    priced: int = 0  # how many transactions carried a profit
    cats: tuple[tuple[str, int, int], ...] = ()  # (category, purchases, amount net of refunds), by name


class ExtraSums(NamedTuple):
    """``Extra`` summed over the long window (derived, like ``Totals``)."""

    profit: int
    profited: int
    priced: int
    cats: dict[str, tuple[int, int]]  # category: (purchases, amount)


def with_transaction(extras: tuple[Extra, ...], fact: Fact, window: dict[str, tuple[int, int]],
                     max_categories: int, *, refund: bool) -> tuple[tuple[Extra, ...], Extra | None]:
    """``extras`` with a transaction's category and profit folded into its day's entry, and what the fact added
    (an ``Extra`` of its own), or None where admitting its category folded another into ``OTHER``.

    ``window``: the long window's categories before the fact (``ExtraSums.cats``). The ``max_categories`` of
    them with the greatest amount keep their names. A category new to the window past the bound takes the place
    of the one of the least amount (then the fewest purchases, then the last name) when its amount exceeds that
    one's, which is folded into ``OTHER`` in every entry; otherwise the newcomer counts as ``OTHER``. A category
    folded away that comes back starts again from 0."""
    day, sign = fact.day, -1 if refund else 1
    i = len(extras)
    while i and extras[i - 1].day > day:
        i -= 1
    same = bool(i) and extras[i - 1].day == day
    _, profit, profited, priced, cats = extras[i - 1] if same else Extra(day)
    added: Extra | None = Extra(day)
    if fact.profit is not None:
        added = Extra(day, sign * fact.profit, sign * fact.amount, 1)
        profit, profited, priced = profit + added.profit, profited + added.profited, priced + 1
    if fact.category:
        name, folded = fact.category, False
        if name != OTHER and name not in window and len(window) - (OTHER in window) >= max_categories:
            ranked = {c: (a, n) for c, (n, a) in window.items() if c != OTHER}
            least = min(sorted(ranked, reverse=True), key=ranked.__getitem__)  # ties: the last name
            if sign * fact.amount <= ranked[least][0]:
                name = OTHER
            else:
                extras, folded = tuple(folded_into_other(e, least) for e in extras), True
                cats = extras[i - 1].cats if same else cats
        held = {c[0]: (c[1], c[2]) for c in cats}
        n, amount = held.get(name, (0, 0))
        held[name] = (n + (sign > 0), amount + sign * fact.amount)
        cats = tuple((k, n, a) for k, (n, a) in sorted(held.items()))
        added = None if folded or added is None else new_tuple(Extra, (
            day, added.profit, added.profited, added.priced, ((name, int(sign > 0), sign * fact.amount),)))
    entry = Extra(day, profit, profited, priced, cats)
    return (*extras[: i - 1], entry, *extras[i:]) if same else (*extras[:i], entry, *extras[i:]), added


def folded_into_other(extra: Extra, name: str) -> Extra:
    """``extra`` with category ``name`` counted as ``OTHER``."""
    found = next((c for c in extra.cats if c[0] == name), None)
    if found is None:
        return extra
    merged = {c: (n, a) for c, n, a in extra.cats if c != name}
    n, a = merged.get(OTHER, (0, 0))
    merged[OTHER] = (n + found[1], a + found[2])
    return extra._replace(cats=tuple((c, n, a) for c, (n, a) in sorted(merged.items())))


def extra_sums(extras: tuple[Extra, ...], long_start: int, as_of: int) -> ExtraSums | None:
    """The long window's categories and profit as of ``as_of`` (None when the state holds no extras)."""
    if not extras:
        return None
    return shifted(NO_EXTRA, [e for e in extras if long_start <= e.day <= as_of], ())


NO_EXTRA = ExtraSums(0, 0, 0, {})


def shifted(sums: ExtraSums, entering: Sequence[Extra], leaving: Sequence[Extra]) -> ExtraSums:
    """``sums`` with ``entering`` added and ``leaving`` taken away (a category at nothing is dropped)."""
    if not entering and not leaving:
        return sums
    profit, profited, priced = sums.profit, sums.profited, sums.priced
    cats = dict(sums.cats)
    for sign, entries in ((1, entering), (-1, leaving)):
        for e in entries:
            profit, profited, priced = profit + sign * e.profit, profited + sign * e.profited, priced + sign * e.priced
            for name, n, amount in e.cats:
                had = cats.get(name)
                now = (sign * n, sign * amount) if had is None else (had[0] + sign * n, had[1] + sign * amount)
                if now == (0, 0):
                    cats.pop(name, None)
                else:
                    cats[name] = now
    return ExtraSums(profit, profited, priced, cats)


def rolled(extras: tuple[Extra, ...], sums: ExtraSums, *, old_as_of: int, old_start: int, as_of: int,
           long_start: int) -> ExtraSums:
    """The long window's extra sums (``sums``, as of ``old_as_of`` from ``old_start``) moved to a later
    (``long_start``, ``as_of``): only the entries that leave or enter are touched."""
    leaving = []
    for e in extras:
        if e.day >= long_start:
            break
        if old_start <= e.day <= old_as_of:
            leaving.append(e)
    entering = []
    for e in reversed(extras):
        if e.day <= old_as_of:
            break
        if long_start <= e.day <= as_of:
            entering.append(e)
    return shifted(sums, entering, leaving)
