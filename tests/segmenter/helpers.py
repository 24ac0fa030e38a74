"""Small builders for core tests."""

from datetime import date

from segmenter.state import INTERACTION, PURCHASE, REFUND, Fact, hash_event_id


def day(text: str) -> int:
    return date.fromisoformat(text).toordinal()


def purchase(when: str, amount: int, event_id: str) -> Fact:
    return Fact(day(when), PURCHASE, amount * 100, hash_event_id(event_id))


def refund(when: str, amount: int, event_id: str) -> Fact:
    return Fact(day(when), REFUND, amount * 100, hash_event_id(event_id))


def interaction(when: str, event_id: str, kind: str = "visit", satisfaction: int = 0) -> Fact:
    return Fact(day(when), INTERACTION, 0, hash_event_id(event_id), kind == "complaint",
                kind == "referral", satisfaction)
