"""The creations-per-minute window as pure logic (no server, no clock): what it admits, and that the
wait it reports on a refusal is exactly when one more creation is allowed."""

from __future__ import annotations

from browserfleet.sessions.ratelimit import CreationWindow, Usage


def test_it_admits_up_to_the_limit_in_any_minute() -> None:
    window = CreationWindow()
    assert [window.take("p", 3, t) for t in (0.0, 10.0, 20.0)] == [None, None, None]
    assert window.take("p", 3, 30.0) == Usage(0, 30)  # the creation at 0 s leaves the window at 60 s
    assert window.take("p", 3, 59.5) == Usage(0, 1)
    assert window.take("p", 3, 60.0) is None  # exactly a minute after the first: allowed
    assert window.take("p", 3, 61.0) == Usage(0, 9)
    assert window.usage("p", 3, 61.0) == Usage(0, 9)


def test_the_reported_wait_is_true() -> None:
    """Retrying after `reset_seconds` always succeeds, and retrying a second earlier never does."""
    window = CreationWindow()
    for t in (0.0, 0.4, 17.25, 42.9):
        assert window.take("p", 4, t) is None
    now = 43.0
    while now < 200.0:
        refused = window.take("p", 4, now)
        if refused is None:
            now += 0.7
            continue
        assert refused.remaining == 0
        assert window.take("p", 4, now + refused.reset_seconds - 1) is not None
        assert window.take("p", 4, now + refused.reset_seconds) is None
        now += refused.reset_seconds + 0.3


def test_projects_are_counted_apart_and_refusals_do_not_count() -> None:
    window = CreationWindow()
    assert window.take("a", 1, 0.0) is None
    assert window.take("b", 1, 0.0) is None
    for t in (1.0, 2.0, 3.0):
        assert window.take("a", 1, t) is not None  # refused: does not push the window on
    assert window.take("a", 1, 60.0) is None


def test_a_creation_given_back_no_longer_counts() -> None:
    window = CreationWindow()
    assert window.take("p", 2, 5.0) is None
    assert window.take("p", 2, 6.0) is None
    window.give_back("p", 5.0)
    assert window.usage("p", 2, 7.0) == Usage(1, 59)  # only the creation at 6 s is left
    assert window.take("p", 2, 7.0) is None
    window.give_back("p", 99.0)  # never taken: nothing happens
    assert window.usage("p", 2, 8.0) == Usage(0, 58)


def test_an_empty_window_reports_the_whole_limit_and_keeps_nothing() -> None:
    window = CreationWindow()
    assert window.usage("p", 5, 0.0) == Usage(5, 0)
    assert window.take("p", 5, 0.0) is None
    assert window.usage("p", 5, 1.0) == Usage(4, 59)
    assert window.usage("p", 5, 60.0) == Usage(5, 0)
    assert not window._times  # a project that stopped creating costs no memory
