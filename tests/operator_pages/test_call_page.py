"""The call page: waveform peaks from the WAV, transcript aligned to the recording, latency bars,
fallback markers; the list's filters; links from the dashboard and the Call admin."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from telephony.dashboard import waveform
from telephony.models import Call
from tests.operator_pages.seed import CALLER, GREETING, REPLIES, seed_call, write_wav

pytestmark = pytest.mark.django_db


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return Path(settings.MEDIA_ROOT)


def test_peaks_and_runs_come_from_the_two_channels(tmp_path):
    rec = waveform.analyse(write_wav(tmp_path / "x.wav"), buckets=90)
    assert rec.duration_s == pytest.approx(9.0)
    assert len(rec.caller_peaks) == len(rec.agent_peaks) == 90
    assert [(round(a, 1), round(b, 1)) for a, b in rec.caller_runs] == [CALLER[0], CALLER[1]]
    assert [(round(a, 1), round(b, 1)) for a, b in rec.agent_runs] == [GREETING, *REPLIES]
    assert max(rec.agent_peaks) > max(rec.caller_peaks) > 0.25  # 0.4 vs 0.3 amplitude
    assert waveform.analyse(tmp_path / "missing.wav") is None


def test_call_page_aligns_the_transcript_and_marks_fallbacks(client, staff, media, campaign):
    call = seed_call(media, campaign)
    client.force_login(staff)
    html = client.get(f"/calls/{call.pk}/").content.decode()
    assert 'id="wave"' in html and html.count('class="lane ') == 2
    times = [float(t) for t in re.findall(r'data-t="([0-9.]+)"', html)]
    # greeting, then caller/agent of each turn, in recording order and near the real audio
    assert len(times) == 5 and times == sorted(times)
    expected = [GREETING[0], CALLER[0][0], REPLIES[0][0], CALLER[1][0], REPLIES[1][0]]
    assert all(abs(a - b) <= 0.25 for a, b in zip(times, expected, strict=True)), (times, expected)
    assert html.count('class="turnbar"') == 2
    assert "tts cartesia: timeout" in html and "fallback" in html  # provider fallback marked
    assert "One moment." in html and "barge-in" in html
    assert "caller hung up" in html  # outcome


def test_dashboard_and_admin_link_to_the_call_page(client, staff, media, campaign):
    call = seed_call(media, campaign)
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    assert f'href="/calls/{call.pk}/"' in client.get("/calls/").content.decode()
    admin = client.get(f"/admin/telephony/call/{call.pk}/change/").content.decode()
    assert f'href="/calls/{call.pk}/"' in admin


def _ids(client, query: str) -> set[int]:
    html = client.get("/calls/?" + query, HTTP_HX_REQUEST="true").content.decode()
    return {int(x) for x in re.findall(r'data-call="(\d+)"', html)}


def test_filters(client, staff, media, campaign):
    client.force_login(staff)
    long_call = seed_call(media, campaign)  # 9 s, p95 700, words "appointment"
    now = timezone.now()
    short = Call.objects.create(sip_call_id="b", caller_uri="sip:bob@x", dialed="200", answered_at=now,
                                ended_at=now + timedelta(seconds=2), end_reason="rtp_timeout", mouth_to_ear_p95_ms=2500)
    old = Call.objects.create(sip_call_id="c", caller_uri="sip:carol@x", dialed="100", end_reason="cancel")
    Call.objects.filter(pk=old.pk).update(started_at=now - timedelta(days=40))
    assert _ids(client, "") == {long_call.pk, short.pk, old.pk}
    assert _ids(client, f"campaign={campaign.pk}") == {long_call.pk}
    assert _ids(client, "outcome=rtp_timeout") == {short.pk}
    assert _ids(client, "min_s=5") == {long_call.pk}
    assert _ids(client, "max_s=5") == {short.pk}
    assert _ids(client, "min_p95_ms=1000") == {short.pk}
    assert _ids(client, "q=appointment") == {long_call.pk}
    assert _ids(client, "q=bob") == {short.pk}
    since = (now - timedelta(days=1)).date().isoformat()
    assert _ids(client, f"since={since}") == {long_call.pk, short.pk}
    until = (now - timedelta(days=30)).date().isoformat()
    assert _ids(client, f"until={until}") == {old.pk}
    # hostile values are ignored, never a 500
    for q in ("min_s=99999999999999999999", "since=2024-13-45", "q=%00x", "campaign=%C2%B2"):
        assert client.get("/calls/?" + q).status_code == 200
    if "direction" in {f.name for f in Call._meta.get_fields()}:
        Call.objects.filter(pk=short.pk).update(direction="outbound")
        assert _ids(client, "direction=outbound") == {short.pk}
