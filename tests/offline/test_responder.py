"""The offline responder answers from the campaign's own text, handles the intents every call has,
and says so when the campaign does not tell it the answer (it never invents one)."""

import pytest

from aioptions.providers.markers import HANGUP_MARKER
from aioptions.providers.offline_llm import ScriptedLLM, campaign_facts, scripted_reply
from telephony.pipeline.agent import VOICE_RULES

PROMPT = (
    "Campaign: Acme Dental reminders\n"
    "You are a friendly receptionist for Acme Dental on a phone call. Confirm or reschedule the "
    "caller's appointment (Tuesday at 3 pm). Answer in one or two short spoken sentences.\n"
    "Our opening hours are Monday to Friday from 8 am to 6 pm, and Saturday from 9 am to 1 pm. "
    "We are closed on Sundays. The clinic is at 12 Harbour Street, next to the post office.\n"
    "- A check-up costs 60 dollars.\n- Parking is free behind the building."
)


def reply(text: str) -> str:
    return scripted_reply([{"role": "system", "content": PROMPT + VOICE_RULES},
                           {"role": "assistant", "content": "Hi, this is Acme Dental."},
                           {"role": "user", "content": text}])


@pytest.mark.parametrize("question, answer", [
    ("What are your opening hours on Saturday?", "Saturday from 9 am to 1 pm"),
    ("Well, you're opening our month, Saturday.", "Saturday from 9 am to 1 pm"),  # a real Whisper mishearing
    ("Where are you located?", "12 Harbour Street"),
    ("How much is a check-up?", "60 dollars"),
    ("Is there parking?", "Parking is free"),
    ("When is my appointment?", "Your appointment is Tuesday at 3 pm"),
    ("Are you open on Sunday?", "closed on Sundays"),
])
def test_answers_from_the_prompt(question, answer):
    assert answer in reply(question)


def test_instructions_are_never_read_out_as_facts():
    facts = " ".join(campaign_facts(PROMPT + VOICE_RULES))
    assert "receptionist" not in facts and "spoken sentences" not in facts and "Campaign" not in facts
    assert "[END_CALL]" not in facts and "Speak in short" not in facts


def test_says_honestly_when_the_campaign_does_not_say():
    for q in ("Do you do teeth whitening?", "What is the dentist's favourite colour?"):
        out = reply(q)
        assert "don't have that information" in out, out


def test_intents():
    assert reply("ok thanks, bye").endswith(HANGUP_MARKER)
    assert reply("No thank you, goodbye.").endswith(HANGUP_MARKER)
    assert "Which day" in reply("I need to reschedule my appointment")
    assert "person to call you back" in reply("Can I talk to a real person?")
    assert "all set" in reply("Yes, that's fine.")
    assert "pressed 5" in reply("[caller pressed 5]")
    assert "didn't catch" in reply("zzz qqq")
    assert reply("Could you repeat that?").startswith("Of course. Hi, this is Acme Dental.")


def test_a_question_with_bye_in_it_is_answered_not_hung_up():
    out = reply("Before I say bye, what are your opening hours on Saturday?")
    assert "9 am to 1 pm" in out and HANGUP_MARKER not in out


async def test_streams_the_answer_labelled_offline():
    llm = ScriptedLLM()
    assert (llm.name, llm.model) == ("offline", "offline-script")
    s = llm.stream([{"role": "system", "content": PROMPT}, {"role": "user", "content": "Where are you located?"}])
    text = "".join([d async for d in s])
    assert "12 Harbour Street" in text and s.result.first_token_at is not None
