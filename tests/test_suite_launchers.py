"""The one polling loop both suite launchers run (runners/suite/launchers.py), against a scripted
launcher: every outcome is collected and reported in order, cells never started are counted but not
listed, it waits only while runs are in progress, and an interruption stops what is running."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from runners.suite import launchers
from runners.suite.process import NOT_RUN, Outcome


def outcome(run_id: str, status: str) -> Outcome:
    return Outcome(SimpleNamespace(run_id=run_id), status, error=None if status == "ok" else status)


class Scripted:
    """A launcher whose polls return the scripted (started-or-ended, collected) outcomes in turn."""

    desc = "scripted"
    poll_s = 0.0

    def __init__(self, polls: list[tuple[list[Outcome], list[Outcome]]], fail_at: int | None = None) -> None:
        self.polls, self.fail_at = polls, fail_at
        self.turn = 0
        self.stopped = False
        self.asked_in_progress = 0

    def start_ready(self) -> list[Outcome]:
        return self.polls[self.turn][0]

    def collect(self) -> list[Outcome]:
        if self.turn == self.fail_at:
            raise KeyboardInterrupt
        collected = self.polls[self.turn][1]
        self.turn += 1
        return collected

    def pending(self) -> bool:
        return self.turn < len(self.polls)

    def in_progress(self) -> bool:
        self.asked_in_progress += 1
        return self.pending()

    def stop(self) -> None:
        self.stopped = True


def test_every_outcome_is_collected_in_order_and_not_run_cells_are_counted_not_listed(monkeypatch):
    written: list[str] = []
    monkeypatch.setattr(launchers, "report", lambda bar, o: written.append(f"{o.status} {o.cell.run_id}"))
    a, b, c, d = (outcome("a", "busy"), outcome("b", "ok"), outcome("c", "failed"), outcome("d", NOT_RUN))
    launcher = Scripted([([a], []), ([], [b]), ([d], [c])])
    assert launchers.poll(launcher, total=4) == [
        a,
        b,
        d,
        c,
    ]  # each poll: what started or ended, then collected
    assert written == ["busy a", "ok b", "failed c"]
    assert launcher.asked_in_progress == 3 and not launcher.stopped


def test_an_interruption_stops_the_runs_in_progress_and_goes_on():
    launcher = Scripted([([], [outcome("a", "ok")]), ([], [])], fail_at=1)
    with pytest.raises(KeyboardInterrupt):
        launchers.poll(launcher, total=2)
    assert launcher.stopped
