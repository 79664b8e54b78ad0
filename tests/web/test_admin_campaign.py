"""Admin writes to a campaign go through campaigns.services.save_campaign: voice, LLM override and
the one-default rule are checked by the service (under the row lock), the whole form saves or
nothing does, voice/LLM changes are recorded in the AI change history and broadcast once after
commit — the same guarantees the API's and the page's writes have."""

from unittest import mock

import pytest

from aioptions.models import AIConfigChange
from aioptions.services import ValidationError
from campaigns import services
from campaigns.models import Campaign

pytestmark = pytest.mark.django_db(transaction=True)  # on_commit broadcasts really run
LEDA = "google:en-US-Chirp3-HD-Leda"


def form(**over) -> dict:
    data = {"name": "Acme", "extension": "100", "active": "on", "is_default": "", "system_prompt": "p",
            "greeting": "g", "preview_text": "", "voice": "", "llm": "",
            "dialer-TOTAL_FORMS": "0", "dialer-INITIAL_FORMS": "0", "dialer-MIN_NUM_FORMS": "0",
            "dialer-MAX_NUM_FORMS": "1"}  # the dialer settings inline's management form
    data.update(over)
    return data


def test_admin_change_is_one_service_write_with_history_and_one_broadcast(root):
    c = Campaign.objects.create(name="Acme", extension="100")
    with mock.patch("campaigns.services.broadcast_config") as broadcast, \
            mock.patch("campaigns.services.save_campaign", wraps=services.save_campaign) as save:
        r = root.post(f"/admin/campaigns/campaign/{c.pk}/change/",
                      form(name="Acme 2", voice=LEDA, llm="openai:gpt-4o-mini"))
    assert r.status_code == 302, r.content.decode()[:1500]
    save.assert_called_once()
    assert save.call_args.kwargs["source"] == "admin"
    c.refresh_from_db()
    assert (c.name, c.voice_id, c.llm_provider, c.llm_model) == ("Acme 2", "en-US-Chirp3-HD-Leda", "openai",
                                                                 "gpt-4o-mini")
    assert sorted(AIConfigChange.objects.filter(source="admin", target=f"campaign:{c.pk}")
                  .values_list("field", flat=True)) == ["llm", "voice"]
    broadcast.assert_called_once()
    payload = broadcast.call_args.args[0]
    assert "extension" not in payload["changed"]  # only what changed
    assert {"name", "voice", "llm"} <= set(payload["changed"]) and payload["campaign"]["llm"]["model"] == "gpt-4o-mini"


def test_admin_add_goes_through_the_service_too(root):
    with mock.patch("campaigns.services.save_campaign", wraps=services.save_campaign) as save:
        r = root.post("/admin/campaigns/campaign/add/", form(extension="200", voice=LEDA))
    assert r.status_code == 302, r.content.decode()[:1500]
    save.assert_called_once()
    assert Campaign.objects.get(extension="200").voice_id == "en-US-Chirp3-HD-Leda"


def test_admin_refuses_a_second_default_on_the_field_and_saves_nothing(root):
    Campaign.objects.create(name="Main", extension="100", is_default=True)
    other = Campaign.objects.create(name="Other", extension="200")
    r = root.post(f"/admin/campaigns/campaign/{other.pk}/change/", form(name="Renamed", extension="200",
                                                                        is_default="on"))
    assert r.status_code == 200 and "is already the default campaign" in r.content.decode()
    other.refresh_from_db()
    assert (other.name, other.is_default) == ("Other", False)


def test_a_refused_part_saves_no_part():
    c = Campaign.objects.create(name="Acme", extension="100")
    with pytest.raises(ValidationError) as err:
        services.save_campaign(campaign_id=c.pk, fields={"name": "New name"}, voice=("google", "no-such-voice"),
                               llm=("", ""))
    assert err.value.field == "voice"
    with pytest.raises(ValidationError) as err:
        services.save_campaign(campaign_id=c.pk, fields={"name": "New name"}, voice=("", ""),
                               llm=("openai", "no-such-model"))
    assert err.value.field == "llm"
    c.refresh_from_db()
    assert c.name == "Acme" and AIConfigChange.objects.count() == 0


def test_the_default_rule_is_checked_by_the_service_itself():
    Campaign.objects.create(name="Main", extension="100", is_default=True)
    other = Campaign.objects.create(name="Other", extension="200")
    with pytest.raises(ValidationError) as err:  # no form in front: the service alone must refuse
        services.save_campaign(campaign_id=other.pk, fields={"is_default": True}, voice=("", ""), llm=("", ""))
    assert err.value.field == "is_default"
    assert not Campaign.objects.get(pk=other.pk).is_default
