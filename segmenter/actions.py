"""Actions on segment changes, decided without I/O: which transition grants what, and when not.

The streaming side (``streams/actions/actor.py``) feeds each segment change of a customer, in order, to
``decide`` with that customer's ``Ledger`` and gets back what to grant, what to suppress and the new
ledger. Everything here is deterministic in its inputs: the ids of a grant derive from the change
that caused it and the action, so any copy of a grant is recognisably the same grant.

- **Cooldown** is measured in stream time between two grants of one action to one customer:
  a grant at ``t`` suppresses entries in ``[t, t + cooldown)``.
- **min_dwell** turns an entry at ``t`` into a ``Pending`` due at ``t + min_dwell``; it fires at its
  due time (the cooldown is checked then), or is cancelled if the customer leaves first.
- **Replay**: a change whose stream time is older than the horizon behind the wall clock at the moment
  the change was emitted, or any change while actions are switched off, grants nothing.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from segmenter.errors import InvalidRuleError

SEEN_KEPT = 16  # change ids remembered per customer: re-emitted copies of a change arrive close together
_DURATION = re.compile(r"^(\d{1,12})(d|h|s)$")
MAX_DURATION_S = 3660 * 86_400
"""The longest duration a ruleset may name (10 years and a few days): a coupon's validity, a cooldown, a dwell."""
_UNIT_S = {"d": 86_400, "h": 3_600, "s": 1}

Reason = Literal["cooldown", "replay", "dwell", "recovery"]


def duration_s(text: str) -> int:
    """``30d`` / ``12h`` / ``90s`` in seconds."""
    match = _DURATION.match(text)
    if not match:
        raise InvalidRuleError(f"{text!r} is not a duration: use a whole number of d, h or s (30d, 12h, 90s)")
    seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds > MAX_DURATION_S:
        raise InvalidRuleError(f"{text!r} is longer than {MAX_DURATION_S // 86_400}d, the longest duration allowed")
    return seconds


def _human(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class CouponSpec:
    template: str
    value: Decimal | None
    percent: Decimal | None
    valid_for_s: int


@dataclass(frozen=True, slots=True)
class AlertSpec:
    priority: str
    roster: str | None
    message: str


@dataclass(frozen=True, slots=True)
class PublishSpec:
    topic: str  # the name after ``<prefix>publish.``
    payload: tuple[tuple[str, str], ...]  # field -> template


@dataclass(frozen=True, slots=True)
class ActionSpec:
    id: str
    trigger: Literal["enter", "leave"]
    dimension: str
    segment: str
    cooldown_s: int
    min_dwell_s: int
    coupon: CouponSpec | None = None
    alert: AlertSpec | None = None
    publish: PublishSpec | None = None
    occasion: str | None = None  # "birthday" or "first_purchase_anniversary" (``segmenter.occasions``)
    lead_days: int = 0  # for an occasion: this many days ahead of it

    @classmethod
    def on_occasion(cls, action_id: str, kind: str, lead_days: int, cooldown_s: int, *,
                    coupon: CouponSpec | None = None, alert: AlertSpec | None = None,
                    publish: PublishSpec | None = None) -> ActionSpec:
        """An action fired by an occasion: it matches the occasion's change (dimension ``#<kind>``, ``before`` the
        lead in days, ``after`` the occasion's date), which no segment change can look like."""
        return cls(action_id, "enter", f"#{kind}", "", cooldown_s, 0, coupon, alert, publish, kind, lead_days)

    @property
    def kind(self) -> Literal["coupon", "alert", "publish"]:
        return "coupon" if self.coupon is not None else "alert" if self.alert is not None else "publish"

    @property
    def target(self) -> str:
        """``dimension.segment``; for an occasion ``#birthday`` (``#birthday-7d`` with a lead)."""
        if self.occasion is not None:
            return f"#{self.occasion}" + (f"-{self.lead_days}d" if self.lead_days else "")
        return f"{self.dimension}.{self.segment}"

    def describe(self, rosters: Mapping[str, RosterSpec]) -> str:
        """One line for ``rules check``."""
        if self.coupon is not None:
            c = self.coupon
            amount = f"{c.percent}% off" if c.percent is not None else f"value {c.value}"
            what = f"coupon {c.template} ({amount}, valid {_human(c.valid_for_s)})"
        elif self.publish is not None:
            fields = ", ".join(k for k, _ in self.publish.payload) or "no payload"
            what = f"publish to publish.{self.publish.topic} ({fields})"
        else:
            assert self.alert is not None
            roster = rosters.get(self.alert.roster or "")
            route = (f", roster {roster.name} (team by {roster.by or 'nothing'}, {roster.policy}, "
                     f"{len(roster.teams)} team(s) + default)" if roster else ", no roster")
            what = f"alert ({self.alert.priority}{route})"
        timing = f"cooldown {_human(self.cooldown_s)}"
        if self.min_dwell_s:
            timing += f", after staying {_human(self.min_dwell_s)}"
        if self.occasion is not None:
            ahead = f", {self.lead_days} day(s) ahead" if self.lead_days else ""
            return f"{self.id}: on the customer's {self.occasion.replace('_', ' ')}{ahead} -> {what}; {timing}"
        return f"{self.id}: on {'entering' if self.trigger == 'enter' else 'leaving'} {self.target} -> {what}; {timing}"

    def fires_on(self, dimension: str, before: str | None, after: str | None) -> bool:
        """``after`` None: the dimension left with its ruleset, which fires nothing."""
        if dimension != self.dimension or before == after or after is None:
            return False
        if self.occasion is not None:
            return before == str(self.lead_days)
        return after == self.segment if self.trigger == "enter" else before == self.segment

    def undone_by(self, dimension: str, before: str | None, after: str | None) -> bool:
        """The move that cancels a pending dwell of this action (the customer left its condition)."""
        if dimension != self.dimension or before == after or self.occasion is not None:
            return False
        return before == self.segment if self.trigger == "enter" else after == self.segment


@dataclass(frozen=True, slots=True)
class RosterSpec:
    name: str
    by: str | None
    policy: Literal["least_loaded", "round_robin"]
    teams: Mapping[str, tuple[str, ...]]
    default: tuple[str, ...]

    def team_of(self, profile: Mapping[str, str | None]) -> tuple[str, tuple[str, ...]]:
        """(team name, members) for a customer with ``profile`` (its ``profile.*`` attributes, as in
        SegmentChange.profile); ``""`` names the default team."""
        value = profile.get(f"profile.{self.by}") if self.by else None
        if value is not None and value in self.teams:
            return value, self.teams[value]
        return "", self.default

    def choose(self, members: Sequence[str], current: str | None, loads: Mapping[str, int], turn: int) -> str:
        """Keep ``current`` while it is still in the team; otherwise least loaded (ties: roster order)
        or the ``turn``-th member in round robin."""
        if current is not None and current in members:
            return current
        if self.policy == "round_robin":
            return members[turn % len(members)]
        return min(members, key=lambda m: (loads.get(m, 0), members.index(m)))


@dataclass(frozen=True, slots=True)
class ChangeView:
    """The fields of a SegmentChange that actions read (``stream_s``: its stream time, epoch seconds)."""

    change_id: str
    customer_id: str
    dimension: str
    before: str | None
    after: str | None  # None: the dimension left with its ruleset
    stream_s: float
    ruleset_id: str
    ruleset_version: int
    profile: Mapping[str, str | None] = field(default_factory=dict)
    cause: str = "event"  # recovery: the state put back after a worker's stop, which grants nothing


@dataclass(frozen=True, slots=True)
class Grant:
    """One action to carry out. ``at_s``: the stream time it holds for (entry, or end of the dwell)."""

    action: ActionSpec
    change: ChangeView
    at_s: float

    @property
    def key(self) -> str:
        return idempotency_key(self.action.id, self.change.change_id)

    @property
    def grant_id(self) -> str:
        return grant_id(self.action.id, self.change.change_id)


@dataclass(frozen=True, slots=True)
class Suppressed:
    action: ActionSpec
    change: ChangeView
    reason: Reason

    @property
    def key(self) -> str:
        return idempotency_key(self.action.id, self.change.change_id)


@dataclass(frozen=True, slots=True)
class Pending:
    """An entry waiting out its ``min_dwell``."""

    due_s: float
    action_id: str
    change: ChangeView


GRANTED_KEPT = 64  # (action, change) pairs remembered per customer: several actions may fire on one change


@dataclass(slots=True)
class Ledger:
    """What one customer has been granted: the changes decided in full, each (action, change) pair granted, the
    last grant per action, managers. A change is skipped whole only once it was decided in full; a grant found on
    the output topics after a crash records its pair alone, so a redelivered change still grants its other
    actions."""

    seen: list[str] = field(default_factory=list)
    last: dict[str, float] = field(default_factory=dict)
    managers: dict[str, str] = field(default_factory=dict)
    granted: list[str] = field(default_factory=list)  # idempotency keys, "action:change"

    def to_dict(self) -> dict[str, Any]:
        return {"seen": self.seen, "last": self.last, "managers": self.managers, "granted": self.granted}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Ledger:
        if not data:
            return cls()
        return cls(list(data.get("seen", ())), dict(data.get("last", {})), dict(data.get("managers", {})),
                   list(data.get("granted", ())))

    def remember(self, change_id: str) -> None:
        """The change was decided in full: a copy of it does nothing."""
        if change_id not in self.seen:
            self.seen.append(change_id)
            del self.seen[:-SEEN_KEPT]

    def record_grant(self, action_id: str, change_id: str, at_s: float) -> None:
        """A grant happened (decided here, or found on the output topic after a crash)."""
        key = idempotency_key(action_id, change_id)
        if key not in self.granted:
            self.granted.append(key)
            del self.granted[:-GRANTED_KEPT]
        self.last[action_id] = max(at_s, self.last.get(action_id, at_s))

    def has_granted(self, action_id: str, change_id: str) -> bool:
        return idempotency_key(action_id, change_id) in self.granted


@dataclass(slots=True)
class Outcome:
    grants: list[Grant] = field(default_factory=list)
    suppressed: list[Suppressed] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    cancelled: list[Pending] = field(default_factory=list)  # waiting dwells this change ended

    @property
    def effective(self) -> bool:
        return bool(self.grants or self.suppressed or self.pending or self.cancelled)


def idempotency_key(action_id: str, change_id: str) -> str:
    return f"{action_id}:{change_id}"


def grant_id(action_id: str, change_id: str) -> str:
    return hashlib.sha256(f"{action_id}\x00{change_id}".encode()).hexdigest()[:32]


def coupon_code(template: str, action_id: str, change_id: str) -> str:
    digest = hashlib.sha256(f"code\x00{action_id}\x00{change_id}".encode()).digest()
    return f"{template}-{base64.b32encode(digest).decode()[:12]}"


def _fire(ledger: Ledger, action: ActionSpec, change: ChangeView, at_s: float, out: Outcome) -> None:
    last = ledger.last.get(action.id)
    if last is not None and at_s < last + action.cooldown_s:
        out.suppressed.append(Suppressed(action, change, "cooldown"))
    else:
        out.grants.append(Grant(action, change, at_s))
        ledger.record_grant(action.id, change.change_id, at_s)


def _act(ledger: Ledger, action: ActionSpec, change: ChangeView, replay_before_s: float | None,
         out: Outcome) -> None:
    """One action that ``change`` fires and that was not granted yet: suppressed, waiting out its dwell, or fired."""
    if replay_before_s is not None and change.stream_s < replay_before_s:
        out.suppressed.append(Suppressed(action, change, "replay"))
    elif change.cause == "recovery":  # not the customer's move: the topic set back to the saved state
        out.suppressed.append(Suppressed(action, change, "recovery"))
    elif action.min_dwell_s:
        out.pending.append(Pending(change.stream_s + action.min_dwell_s, action.id, change))
    else:
        _fire(ledger, action, change, change.stream_s, out)


def decide(ledger: Ledger, change: ChangeView, actions: Sequence[ActionSpec], waiting: Sequence[Pending], *,
           replay_before_s: float | None) -> Outcome:
    """What ``change`` does. ``waiting``: this customer's pending dwells; ``replay_before_s``: changes
    older than this grant nothing (``inf`` switches actions off, None disables the horizon).
    ``ledger`` is updated in place; a change already in ``ledger.seen`` does nothing."""
    out = Outcome()
    if change.change_id in ledger.seen:
        return out
    by_id = {a.id: a for a in actions}
    for pending in waiting:
        action = by_id.get(pending.action_id)
        if action is not None and action.undone_by(change.dimension, change.before, change.after):
            if pending.due_s <= change.stream_s:  # it stayed long enough before this move: the dwell fired
                _fire(ledger, action, pending.change, pending.due_s, out)
            else:
                out.suppressed.append(Suppressed(action, pending.change, "dwell"))
            out.cancelled.append(pending)
    already = False
    for action in actions:
        if not action.fires_on(change.dimension, change.before, change.after):
            continue
        if ledger.has_granted(action.id, change.change_id):  # granted before a crash, found on its topic
            already = True
        else:
            _act(ledger, action, change, replay_before_s, out)
    if out.effective or already:
        ledger.remember(change.change_id)
    return out


def fire_due(ledger: Ledger, pending: Pending, actions: Sequence[ActionSpec]) -> Outcome:
    """A dwell whose due time the clock passed while the customer stayed: grant it, cooldown permitting."""
    out = Outcome(cancelled=[pending])
    action = next((a for a in actions if a.id == pending.action_id), None)
    if action is not None:
        _fire(ledger, action, pending.change, pending.due_s, out)
    return out
