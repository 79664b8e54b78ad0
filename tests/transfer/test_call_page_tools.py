"""The call page shows each turn's tool calls (name, arguments, status, latency, result excerpt)
under that turn's agent line, from telephony.actions.selectors.tool_calls_by_turn."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model

from campaigns.models import Campaign
from telephony.models import Call, ToolCall, Turn

pytestmark = pytest.mark.django_db


def test_a_tool_call_is_shown_in_its_turn(client):
    staff = get_user_model().objects.create_user("op", password="pw-123456", is_staff=True)
    campaign = Campaign.objects.create(name="Acme", extension="100", is_default=True)
    call = Call.objects.create(sip_call_id="t1", campaign=campaign, end_reason="bye")
    Turn.objects.create(call=call, index=0, user_text="hello", agent_text="Hi there.")
    turn = Turn.objects.create(call=call, index=1, user_text="book me tuesday", agent_text="Done: Tuesday at 3 pm.")
    ToolCall.objects.create(turn=turn, position=0, name="book_slot", arguments={"day": "tuesday"}, status="ok",
                            result_excerpt='{"slot": "Tuesday at 3 pm"}', latency_ms=412.0)
    client.force_login(staff)
    html = client.get(f"/calls/{call.pk}/").content.decode()
    first = html[html.index('id="turn-0"'):html.index('id="turn-1"')]
    second = html[html.index('id="turn-1"'):]
    assert "tool-call" not in first  # a turn without tools shows none
    assert 'class="tool-call tool-ok"' in second and "book_slot(" in second and "tuesday" in second
    assert re.search(r"412 ms", second) and "Tuesday at 3 pm" in second
