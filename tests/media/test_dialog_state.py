"""The dialog's state machine: the only moves are those of TRANSITIONS, and nothing leaves ENDED."""

import pytest

from telephony.media.dialogs import TRANSITIONS, Dialog, DialogState
from telephony.sip.message import parse

INVITE = (b"INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
          b"From: <sip:a@127.0.0.1>;tag=r1\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
          b"Content-Length: 0\r\n\r\n")


def dialog() -> Dialog:
    return Dialog(invite=parse(INVITE), src=("127.0.0.1", 5070), to_tag="l1", remote_tag="r1",
                  local_addr="127.0.0.1")


def test_an_inbound_call_goes_early_answered_confirmed_ended():
    d = dialog()
    assert d.state == "early"  # a StrEnum: reads and compares as its name
    assert d.move(DialogState.ANSWERED) and d.move(DialogState.CONFIRMED) and d.move(DialogState.ENDED)
    assert d.state is DialogState.ENDED


@pytest.mark.parametrize("late", [DialogState.EARLY, DialogState.ANSWERED, DialogState.CONFIRMED])
def test_nothing_revives_an_ended_dialog(late):
    """A set-up that finishes after a CANCEL, or an ACK after BYE, must not bring the call back."""
    d = dialog()
    assert d.move(DialogState.ENDED)
    assert not d.move(late) and d.state is DialogState.ENDED


def test_no_step_backwards_and_a_placed_call_confirms_from_early():
    d = dialog()
    assert d.move(DialogState.CONFIRMED)  # UAC: we send the ACK ourselves
    assert not d.move(DialogState.ANSWERED) and not d.move(DialogState.EARLY)
    assert d.state is DialogState.CONFIRMED
    assert all(s not in TRANSITIONS[s] for s in DialogState)  # no self-loops: a repeat is not a move
