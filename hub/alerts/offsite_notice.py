"""When the owner hears of the off-site copy: once when it has been failing for a while,
once when it works again. Pure logic; the alert thread asks at each sampled state.

A store that is away for a minute (a router restarting, the friend's box rebooting) is
retried by the uploader and costs nothing: the queue waits in the index. Only a copy
that has failed continuously for `FAILING_FOR` is worth a phone buzzing; then the owner
is told once, not per retry, and once more when it works again (never a "working" without
a "failing" before it). A notice the owner's snooze or quiet hours hold back is not lost:
it is still due at the next sample (every 30 s at most), and one whose cause ended
meanwhile is dropped.
"""

from __future__ import annotations

from enum import StrEnum

from hub.offsite.state import OffsiteHealth, OffsiteState

FAILING_FOR = 600.0  # seconds the copy fails continuously before the owner is told


class OffsiteNotice(StrEnum):
    FAILING = "offsite_failing"
    WORKING = "offsite_working"


class OffsiteNotices:
    """Remembers since when the copy fails and what the owner was last told."""

    def __init__(self, failing_for: float = FAILING_FOR) -> None:
        self._failing_for = failing_for
        self._failing_since: float | None = None
        self._told_failing = False

    def due(self, state: OffsiteState, at: float) -> OffsiteNotice | None:
        """The notice owed for the state sampled at `at`, if any (not yet marked told)."""
        failing = state.health is OffsiteHealth.FAILING
        if not failing:
            self._failing_since = None
            return OffsiteNotice.WORKING if self._told_failing else None
        if self._failing_since is None:
            self._failing_since = at
        if not self._told_failing and at - self._failing_since >= self._failing_for:
            return OffsiteNotice.FAILING
        return None

    def told(self, notice: OffsiteNotice) -> None:
        self._told_failing = notice is OffsiteNotice.FAILING
