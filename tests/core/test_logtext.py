"""Peer-supplied text in logs and error messages is bounded."""

from __future__ import annotations

from p2p.logtext import PEER_TEXT_LIMIT, bounded, bounded_exc


def test_short_text_is_kept_whole() -> None:
    assert bounded("abc") == "abc"
    assert bounded(12) == "12"
    assert bounded("x" * PEER_TEXT_LIMIT) == "x" * PEER_TEXT_LIMIT


def test_long_text_is_cut_with_a_note() -> None:
    text = bounded("7" * 1_000_000)
    assert text == "7" * PEER_TEXT_LIMIT + f"... ({1_000_000 - PEER_TEXT_LIMIT} more characters)"
    assert bounded("abcdef", 3) == "abc... (3 more characters)"


def test_exceptions_keep_their_type_and_are_bounded() -> None:
    assert bounded_exc(ValueError("bad")) == "ValueError('bad')"
    text = bounded_exc(ValueError("y" * 100_000))
    assert text.startswith("ValueError('yyy") and len(text) < PEER_TEXT_LIMIT + 100
