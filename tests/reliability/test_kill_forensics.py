"""The availability harness's account of a kill: each failure put where it was, and only real ones counted."""

from __future__ import annotations

from kill_forensics import Kill, Sent, attribute

KILL = Kill(at=10.0, gone=10.01, pid=123, held={5001: 0, 5002: 80})


def test_a_failure_on_a_connection_the_victim_held_since_before_it_died_is_in_flight() -> None:
    sent = [
        Sent(9.9, 10.005, "reset", 5001, new_connection=False),
        Sent(9.95, 10.005, "reset", 5002, new_connection=False),
        Sent(9.9, 10.02, "200", 5003, new_connection=False),
    ]

    result = attribute(sent, [KILL])

    assert result.failed == {
        "in flight on the killed worker (reset, reused connection)": 1,
        "in flight on the killed worker, unread (reset, reused connection)": 1,
    }
    assert result.in_flight == 2
    assert result.stray == 0


def test_failures_away_from_the_victim_or_after_it_was_gone_are_stray() -> None:
    sent = [
        Sent(10.05, 10.06, "reset", 5001, new_connection=False),
        Sent(10.0, 10.1, "refused", None, new_connection=True),
        Sent(9.0, 9.5, "500", 5003, new_connection=False),
    ]

    result = attribute(sent, [KILL])

    assert result.failed == {
        "sent after the kill (reset, reused connection)": 1,
        "elsewhere (refused, new connection)": 1,
        "elsewhere (500, reused connection)": 1,
    }
    assert result.stray == 3
