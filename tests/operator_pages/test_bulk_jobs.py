"""Long admin bulk actions on contacts run as a job with a progress page (issue 20): chunked, each
chunk atomic, polled by htmx, staff only and the owner's, with a result summary and clear errors."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db.models.signals import pre_delete

from campaigns import jobs
from campaigns.models import Contact

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/campaigns/contact/"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def root(client):
    client.force_login(get_user_model().objects.create_superuser("root", password="pw-123456"))
    return client


def make_contacts(campaign, n: int, **special) -> list[int]:
    """n contacts that were called and gave up; ``special`` maps an index to another state."""
    Contact.objects.bulk_create(
        Contact(campaign=campaign, phone=f"+1201555{i:04d}", state=special.get(f"c{i}", Contact.State.FAILED),
                attempts=3, last_outcome="no_answer") for i in range(n))
    return list(Contact.objects.order_by("pk").values_list("pk", flat=True))


def run_action(client, action: str, ids: list[int], **extra):
    return client.post(CHANGELIST, {"action": action, "select_across": "1", "index": "0",
                                    "_selected_action": ids[:1], **extra})


def progress(html: str) -> tuple[int, int]:
    m = re.search(r'data-done="(\d+)" data-total="(\d+)"', html)
    return int(m[1]), int(m[2])


def step_all(client, url: str) -> tuple[list[tuple[int, int]], str]:
    seen, html = [], ""
    for _ in range(10):
        html = client.post(url + "step/", HTTP_HX_REQUEST="true").content.decode()
        seen.append(progress(html))
        if 'data-finished="1"' in html:
            break
    return seen, html


def test_requeue_of_many_contacts_runs_chunk_by_chunk_with_a_summary(root, campaign):
    ids = make_contacts(campaign, 1200, c3=Contact.State.CALLING, c700=Contact.State.DNC)
    r = run_action(root, "requeue_contacts", ids)
    assert r.status_code == 302 and "/campaigns/jobs/" in r["Location"]
    url = r["Location"]
    page = root.get(url).content.decode()
    assert progress(page) == (0, 1200) and 'hx-trigger="load"' in page and "X-CSRFToken" in page
    assert Contact.objects.filter(state=Contact.State.PENDING).count() == 0  # the page only shows progress
    seen, html = step_all(root, url)
    assert seen == [(500, 1200), (1000, 1200), (1200, 1200)]
    assert "hx-post" not in html  # finished: the polling stops
    assert "<strong>1198</strong> re-queued" in html and "<strong>1</strong> left alone: in a call now" in html
    assert "<strong>1</strong> left alone: on do-not-call" in html
    pending = Contact.objects.filter(state=Contact.State.PENDING)
    assert pending.count() == 1198 and set(pending.values_list("attempts", "next_attempt_at")) == {(0, None)}
    in_call = Contact.objects.get(pk=ids[3])
    assert (in_call.state, in_call.attempts) == (Contact.State.CALLING, 3)
    assert Contact.objects.get(pk=ids[700]).state == Contact.State.DNC
    assert set(pending.values_list("last_outcome", flat=True)) == {"no_answer"}  # history is kept
    assert progress(root.post(url + "step/", HTTP_HX_REQUEST="true").content.decode()) == (1200, 1200)


def test_a_small_selection_is_requeued_at_once(root, campaign):
    ids = make_contacts(campaign, 20)
    r = run_action(root, "requeue_contacts", ids, select_across="0")
    assert r.status_code == 302 and r["Location"].endswith(CHANGELIST)
    assert Contact.objects.filter(pk=ids[0], state=Contact.State.PENDING).exists()
    assert "1 re-queued" in root.get(r["Location"]).content.decode()


def test_deleting_many_asks_first_and_cancel_changes_nothing(root, campaign):
    ids = make_contacts(campaign, 600)
    url = run_action(root, "delete_selected", ids)["Location"]
    page = root.get(url).content.decode()
    assert "Delete 600 contacts?" in page and 'data-confirm="1"' in page and "hx-post" not in page
    root.post(url + "step/", HTTP_HX_REQUEST="true")  # a step without the confirmation does nothing
    assert Contact.objects.count() == 600
    assert root.post(url + "cancel/").status_code == 302
    assert "Cancelled: nothing was changed." in root.get(url).content.decode()
    root.post(url + "step/", {"confirm": "1"})
    assert Contact.objects.count() == 600  # a cancelled job never runs

    url = run_action(root, "delete_selected", ids)["Location"]
    r = root.post(url + "step/", {"confirm": "1"})  # the Yes button: a plain form, back to the page
    assert r.status_code == 302 and r["Location"] == url and Contact.objects.count() == 100
    seen, html = step_all(root, url)
    assert seen == [(600, 600)] and Contact.objects.count() == 0 and "<strong>600</strong> deleted" in html


def test_a_failing_chunk_rolls_back_alone_and_the_job_says_where_it_stopped(root, campaign, media):
    ids = make_contacts(campaign, 1200)
    poison = ids[700]  # in the second chunk

    def refuse(sender, instance, **kwargs):
        if instance.pk == poison:
            raise RuntimeError("disk full")

    pre_delete.connect(refuse, sender=Contact)
    try:
        url = run_action(root, "delete_selected", ids)["Location"]
        root.post(url + "step/", {"confirm": "1"})
        seen, html = step_all(root, url)
    finally:
        pre_delete.disconnect(refuse, sender=Contact)
    assert seen == [(500, 1200)] and 'data-failed="1"' in html and "hx-post" not in html
    assert "stopped after 500 of 1200: RuntimeError: disk full" in html and "<strong>500</strong> deleted" in html
    left = set(Contact.objects.values_list("pk", flat=True))
    assert left == set(ids[500:])  # the first chunk is gone, the failed chunk and the rest are intact
    root.post(url + "step/", HTTP_HX_REQUEST="true")  # a stopped job does not go on by itself
    assert Contact.objects.count() == 700 and not list(media.glob("jobs/*.lock"))


def test_only_staff_with_the_permission_and_only_the_owner(client, campaign):
    ids = make_contacts(campaign, 600)
    owner = get_user_model().objects.create_superuser("root", password="pw-123456")
    client.force_login(owner)
    url = run_action(client, "requeue_contacts", ids)["Location"]
    assert client.get(url + "step/").status_code == 405  # GET never changes anything
    joe = get_user_model().objects.create_user("joe", password="pw-123456")
    client.force_login(joe)  # not staff: sent to the login page
    for r in (client.get(url), client.post(url + "step/", HTTP_HX_REQUEST="true")):
        assert r.status_code == 302 and "/login/" in r["Location"]
    op = get_user_model().objects.create_user("op", password="pw-123456", is_staff=True)
    client.force_login(op)  # staff, but not this job's owner
    assert client.post(url + "step/", HTTP_HX_REQUEST="true").status_code == 404
    assert client.get("/campaigns/jobs/..%2Fsecret/").status_code == 404  # not a token: never a path
    st = jobs.state(url.rstrip("/").rsplit("/", 1)[1], owner.pk)
    owner.is_superuser = False  # the owner loses the permission: the job stops with him
    owner.save()
    client.force_login(owner)
    assert client.post(url + "step/", HTTP_HX_REQUEST="true").status_code == 403
    owner.user_permissions.add(Permission.objects.get(codename="change_contact"))
    owner = get_user_model().objects.get(pk=owner.pk)
    client.force_login(owner)
    assert progress(client.post(url + "step/", HTTP_HX_REQUEST="true").content.decode()) == (500, 600)
    assert st["done"] == 0 and Contact.objects.filter(state=Contact.State.PENDING).count() == 500


def make_calls(media, n: int) -> list[int]:
    """n finished calls with a recording file each, then one still in progress."""
    from django.utils import timezone

    from telephony.models import Call

    (media / "recordings").mkdir()
    for i in range(n):
        (media / "recordings" / f"c{i}.wav").write_bytes(b"RIFF")
    Call.objects.bulk_create(Call(sip_call_id=f"c{i}", ended_at=timezone.now(), recording=f"recordings/c{i}.wav")
                             for i in range(n))
    Call.objects.create(sip_call_id="live")
    return list(Call.objects.order_by("pk").values_list("pk", flat=True))


@pytest.mark.django_db(transaction=True)  # recordings are removed on commit: real commits
def test_deleting_many_calls_removes_rows_and_recordings_chunk_by_chunk(root, media):
    from django.utils import timezone

    from telephony.models import Call, Turn, WebhookDelivery

    ids = make_calls(media, 700)
    Turn.objects.create(call_id=ids[0], index=0)
    WebhookDelivery.objects.create(call_id=ids[1], url="https://example.com/h", payload={}, event_id="e1",
                                   next_at=timezone.now())
    poison = ids[600]  # in the second chunk

    def refuse(sender, instance, **kwargs):
        if instance.pk == poison:
            raise RuntimeError("locked")

    pre_delete.connect(refuse, sender=Call)
    try:
        r = root.post("/admin/telephony/call/", {"action": "delete_selected", "select_across": "1", "index": "0",
                                                 "_selected_action": ids[:1]})
        url = r["Location"]
        assert "Delete 701 calls with their turns and recordings?" in root.get(url).content.decode()
        root.post(url + "step/", {"confirm": "1"})
        seen, html = step_all(root, url)
    finally:
        pre_delete.disconnect(refuse, sender=Call)
    assert seen == [(500, 701)] and "stopped after 500 of 701: RuntimeError: locked" in html
    assert "<strong>500</strong> recording files removed" in html
    assert set(Call.objects.values_list("pk", flat=True)) == set(ids[500:])  # the failed chunk kept its rows...
    assert sorted(p.name for p in (media / "recordings").iterdir()) == sorted(f"c{i}.wav" for i in range(500, 700))
    assert not Turn.objects.exists() and WebhookDelivery.objects.get().call_id is None  # the log stays

    # the rest (201, under a chunk): Django's own confirmation page, and the same rules behind it
    form = {"action": "delete_selected", "select_across": "1", "index": "0", "_selected_action": ids[500:501]}
    assert b"Are you sure" in root.post("/admin/telephony/call/", form).content
    r = root.post("/admin/telephony/call/", {**form, "post": "yes"})
    assert r.status_code == 302
    assert list(Call.objects.values_list("sip_call_id", flat=True)) == ["live"]  # a call in progress is kept
    assert not list((media / "recordings").iterdir())
    assert "1 call still in progress was kept" in root.get(r["Location"]).content.decode()


def test_a_step_while_another_holds_the_job_changes_nothing(root, campaign):
    ids = make_contacts(campaign, 600)
    url = run_action(root, "requeue_contacts", ids)["Location"]
    token = url.rstrip("/").rsplit("/", 1)[1]
    lock = jobs.paths(token)[2]
    lock.touch()  # another poll is running this job's chunk
    assert progress(root.post(url + "step/", HTTP_HX_REQUEST="true").content.decode()) == (0, 600)
    assert not Contact.objects.filter(state=Contact.State.PENDING).exists() and lock.exists()
    lock.unlink()  # it finished (and wrote its progress): the next poll goes on
    assert progress(root.post(url + "step/", HTTP_HX_REQUEST="true").content.decode()) == (500, 600)


def test_a_selection_too_large_for_a_job_is_refused_with_the_reason(root, campaign, monkeypatch):
    from campaigns import bulk_actions

    monkeypatch.setattr(bulk_actions, "MAX_SELECTION", 550)
    ids = make_contacts(campaign, 600)
    r = run_action(root, "requeue_contacts", ids)
    assert r.status_code == 302 and r["Location"].endswith(CHANGELIST)
    assert "at most 550 contacts at a time (600 selected)" in root.get(r["Location"]).content.decode().lower()
    assert not Contact.objects.filter(state=Contact.State.PENDING).exists()
