from aioptions.providers.base import TurnEvent
from telephony.pipeline.chunker import SpeakableChunker
from telephony.pipeline.turns import BargeIn, CancelSpeculative, Commit, StartSpeculative, TurnMachine


def ev(kind, text="", i=0):
    return TurnEvent(kind, i, transcript=text)


def test_eager_hit_promotes_without_a_second_request():
    m = TurnMachine(eager_enabled=True)
    assert m.on_event(ev("StartOfTurn"), agent_speaking=False) == []
    assert m.on_event(ev("EagerEndOfTurn", "book Tuesday"), False) == [StartSpeculative("book Tuesday")]
    (commit,) = m.on_event(ev("EndOfTurn", "Book  tuesday"), False)
    assert isinstance(commit, Commit) and commit.promote and commit.eager == "hit"


def test_eager_miss_and_resumed():
    m = TurnMachine(eager_enabled=True)
    m.on_event(ev("EagerEndOfTurn", "book"), False)
    assert m.on_event(ev("TurnResumed"), False) == [CancelSpeculative("resumed")]
    (commit,) = m.on_event(ev("EndOfTurn", "book Tuesday at three"), False)
    assert not commit.promote and commit.eager == "cancelled"
    m.on_event(ev("EagerEndOfTurn", "book"), False)
    actions = m.on_event(ev("EndOfTurn", "book Friday"), False)
    assert actions[0] == CancelSpeculative("changed") and actions[1].eager == "miss" and not actions[1].promote


def test_eager_off_ignores_eager_events_and_barge_in_only_while_speaking():
    m = TurnMachine(eager_enabled=False)
    assert m.on_event(ev("EagerEndOfTurn", "x"), False) == []
    assert m.on_event(ev("StartOfTurn"), agent_speaking=True) == [BargeIn()]
    (commit,) = m.on_event(ev("EndOfTurn", "x"), False)
    assert commit.eager == "off"
    assert m.on_event(ev("EndOfTurn", "   "), False) == []  # nothing said: no turn


def test_chunker_first_piece_early_then_sentences_and_marker_split_across_deltas():
    c = SpeakableChunker()
    out = []
    for d in ["Sure, ", "Tuesday ", "at three ", "works. See ", "you then! Bye. [END", "_CALL]"]:
        out += c.feed(d)
    out += c.flush()
    assert out[0] == "Sure, " and out[1:] == ["Tuesday at three works. ", "See you then! ", "Bye. "]
    assert c.hangup and "END" not in "".join(out)


def test_chunker_long_first_clause_is_cut_by_length():
    c = SpeakableChunker(first_max_words=5)
    out = c.feed("one two three four five six seven eight ")
    assert out and len(out[0].split()) <= 7
