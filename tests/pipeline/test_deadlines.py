"""The no-dead-air deadlines with a manual clock: they count from the end of speech, not from when
the turn's task started (the old apology timer started after EndOfTurn and a DB read: 2.28 s)."""

import pytest

from telephony.pipeline import fillers
from telephony.pipeline.fillers import TurnDeadlines


class ManualClock(fillers.Clock):
    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    async def sleep_until(self, deadline: float) -> None:
        self.t = max(self.t, deadline)


@pytest.mark.parametrize("commit_delay", [0.25, 0.9, 1.4])
async def test_filler_plays_at_1_s_after_speech_end_however_late_the_turn_started(commit_delay):
    clock = ManualClock(100.0 + commit_delay)  # EndOfTurn arrived commit_delay after speech ended at 100.0
    d = TurnDeadlines(100.0, clock)
    played: list[float] = []

    async def play() -> bool:
        played.append(clock.now())
        return True

    await d.filler_watch(lambda: False, play)
    assert played == [max(101.0, 100.0 + commit_delay)]  # at 1 s, or at once if the turn started later
    assert d.filler_played_at - d.speech_end <= fillers.HEARD_BY


async def test_no_filler_once_the_reply_has_audio():
    clock = ManualClock(100.3)
    d = TurnDeadlines(100.0, clock)
    played: list[float] = []

    async def play() -> bool:
        played.append(clock.now())
        return True

    await d.filler_watch(lambda: True, play)
    assert played == [] and d.filler_played_at is None


def test_first_token_deadline_is_the_apology_time_but_never_unfair_to_a_late_request():
    d = TurnDeadlines(100.0, ManualClock(100.0))
    assert d.first_token_deadline(100.3, 4.0, 0) == 103.0  # apology at speech end + 3 s
    assert d.first_token_deadline(102.5, 4.0, 0) == 104.0  # a late EndOfTurn still gets 1.5 s
    assert d.first_token_deadline(103.0, 4.0, 1) == 107.0  # retries: the configured timeout
