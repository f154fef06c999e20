"""The clock-sanity rules (hub/clock.py), as pure logic."""

from __future__ import annotations

from hub.clock import (
    BEHIND_LIMIT,
    JUMP_LIMIT,
    SPAN_CAP,
    AgeWalk,
    ClockStep,
    Reading,
    behind,
    describe,
    jump,
    newest_kept,
    shift_for,
)

DAY = 86400.0
T = 1_800_000_000.0


def test_a_jump_is_wall_time_beyond_the_elapsed_time() -> None:
    assert jump(None, Reading(T, 5.0)) == 0.0  # nothing to compare with at start
    assert jump(Reading(T, 5.0), Reading(T + 60, 65.0)) == 0.0
    assert jump(Reading(T, 5.0), Reading(T + 60 + JUMP_LIMIT, 65.0)) == 0.0  # within the bound
    assert jump(Reading(T - 40 * DAY, 5.0), Reading(T, 65.0)) == 40 * DAY - 60
    assert jump(Reading(T + 31 * DAY, 5.0), Reading(T, 65.0)) == -(31 * DAY + 60)


def test_now_behind_the_newest_footage_beyond_the_bound() -> None:
    assert behind(T, None) == 0.0
    assert behind(T, T + BEHIND_LIMIT) == 0.0
    assert behind(T - 40 * DAY, T) == 40 * DAY


def test_a_step_corrects_only_footage_stamped_before_it() -> None:
    steps = [ClockStep(10, 40 * DAY), ClockStep(20, -31 * DAY)]
    assert shift_for(5, steps) == 9 * DAY
    assert shift_for(10, steps) == 9 * DAY
    assert shift_for(11, steps) == -31 * DAY
    assert shift_for(21, steps) == 0.0


def test_newest_kept_counts_footage_newest_first_with_a_cap_per_segment() -> None:
    spans = [(9, 60.0), (8, 60.0), (7, 60.0), (6, 60.0)]
    assert newest_kept(spans, 0) is None
    assert newest_kept(spans, 100) == 8
    assert newest_kept(spans, 10_000) == 6  # all of it, and less than asked
    assert newest_kept([], 100) is None
    stretched = [(9, 31 * DAY), (8, 60.0), (7, 60.0), (6, 60.0)]  # a jump inside segment 9
    assert newest_kept(stretched, SPAN_CAP + 100) == 7


def test_age_walk_never_lets_footage_age_past_what_was_recorded_before_it() -> None:
    walk = AgeWalk(T - 30 * DAY, [], keep_from=None)
    assert walk.old(1, T - 60 * DAY)
    assert not walk.old(2, T - 2 * DAY)  # then a clock 40 days slow stamped these:
    assert not walk.old(3, T - 42 * DAY)
    assert not walk.old(4, T - 41 * DAY)


def test_age_walk_applies_steps_and_the_guard() -> None:
    # Footage 1-3 stamped 40 days slow, the jump seen after 3; then correct stamps.
    walk = AgeWalk(T - 30 * DAY, [ClockStep(3, 40 * DAY)], keep_from=None)
    assert [walk.old(seq, T - 40 * DAY - 100 + seq) for seq in (1, 2, 3)] == [False] * 3
    later = AgeWalk(T + 31 * DAY - 30 * DAY, [ClockStep(3, 40 * DAY)], keep_from=None)
    assert later.old(1, T - 40 * DAY)  # 31 days on, it is really old
    guarded = AgeWalk(T, [], keep_from=2)
    assert guarded.old(1, T - DAY)
    assert not guarded.old(2, T - DAY)


def test_events_age_by_the_largest_forward_correction() -> None:
    assert AgeWalk(T, [], None).event_cutoff == T
    steps = [ClockStep(3, 40 * DAY), ClockStep(9, -31 * DAY)]
    assert AgeWalk(T, steps, None).event_cutoff == T - 9 * DAY  # the oldest: +40 - 31
    assert AgeWalk(T, [ClockStep(3, 40 * DAY)], None).event_cutoff == T - 40 * DAY


def test_describe() -> None:
    assert describe(40 * DAY) == "40.0 days"
    assert describe(-7200) == "2.0 hours"
    assert describe(720) == "12 minutes"
