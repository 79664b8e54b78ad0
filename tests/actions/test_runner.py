"""The tool runner on its own: signed HTTP tools, the SSRF guard, bounded and unredirected
responses, argument checks, the slow-tool filler (driven by an event clock), built-ins."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async

from aioptions.inputs import InputError
from aioptions.providers.base import ToolCallRequest
from campaigns import tools as campaign_tools
from campaigns.models import Campaign, DoNotCall
from campaigns.tools import HttpTool, RuntimeActions
from telephony.actions import signing
from telephony.actions.runner import ToolRunner

from .toolserver import ToolServer

SECRET = "s3cret-for-tests"
PARAMS = {"type": "object", "properties": {"day": {"type": "string", "enum": ["monday", "tuesday"]}},
          "required": ["day"]}


class Call:
    call_id, record_id, campaign_id, codec = "c1", None, None, "PCMU"
    caller_uri = "sip:+14155552671@127.0.0.1"

    def __init__(self):
        self.played = []

    def play(self, audio, on_sent=None):
        self.played.append(audio)


class EventClock:
    """sleep_until returns only when the test sets ``fire``: 'the filler deadline has passed'."""

    def __init__(self):
        self.fire = asyncio.Event()
        self.t = 0.0

    def now(self):
        return self.t

    async def sleep_until(self, deadline):
        await self.fire.wait()
        self.t = deadline


def runner(url, clock=None, **kw):
    tool = HttpTool("book_slot", "Book", PARAMS, "POST", url, {"X-Api": "k"}, 2.0)
    return ToolRunner(Call(), RuntimeActions(7, SECRET, kw.get("builtins", []), kw.get("targets", []), [tool]), clock)


def req(args, name="book_slot"):
    return ToolCallRequest(0, "call_0", name, args if isinstance(args, str) else json.dumps(args))


@pytest.fixture
def loopback(settings):
    settings.ACTIONS_ALLOWED_NETS = ["127.0.0.1/32"]


async def test_http_tool_is_signed_and_its_result_returned(loopback):
    async with ToolServer([(200, {"booked": "tuesday 15:00"})]) as srv:
        out = await runner(srv.url).run(req({"day": "tuesday"}))
    assert out.status == "ok" and json.loads(out.content) == {"booked": "tuesday 15:00"}
    r = srv.requests[0]
    assert r["method"] == "POST" and r["headers"]["X-Api"] == "k" and r["headers"]["Host"] == f"127.0.0.1:{srv.port}"
    assert signing.verify(SECRET, r["headers"], r["body"])
    assert not signing.verify("wrong", r["headers"], r["body"])
    assert not signing.verify(SECRET, r["headers"], r["body"] + b" ")
    assert json.loads(r["body"])["arguments"] == {"day": "tuesday"}


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/hook", "http://10.1.2.3/x", "http://169.254.169.254/latest",
                                 "http://[::1]:{port}/", "http://localhost:{port}/hook", "http://0.0.0.0:{port}/"])
async def test_ssrf_guard_refuses_private_addresses_unless_allowed(settings, url):
    settings.ACTIONS_ALLOWED_NETS = []
    async with ToolServer() as srv:
        out = await runner(url.format(port=srv.port)).run(req({"day": "monday"}))
    assert out.status == "refused" and "blocked" in out.content and srv.requests == []


async def test_host_allowlist_and_save_time_check(settings):
    settings.ACTIONS_URL_ALLOWED_HOSTS = ["*.example.com"]
    out = await runner("http://evil.test/x").run(req({"day": "monday"}))
    assert out.status == "refused" and "ACTIONS_URL_ALLOWED_HOSTS" in out.content
    with pytest.raises(InputError):
        campaign_tools.clean_tool({"name": "t", "url": "http://api.other.org/x"})
    settings.ACTIONS_URL_ALLOWED_HOSTS = ["*"]
    with pytest.raises(InputError):
        campaign_tools.clean_tool({"name": "t", "url": "http://169.254.169.254/"})


async def test_redirects_are_not_followed_and_bodies_are_bounded(loopback, settings):
    settings.ACTIONS_MAX_RESPONSE_BYTES = 1000
    async with ToolServer([(302, b""), (200, b"x" * 50_000)], headers={"Location": "http://10.0.0.1/"}) as srv:
        first = await runner(srv.url).run(req({"day": "monday"}))
        second = await runner(srv.url).run(req({"day": "monday"}))
    assert first.status == "error" and "redirect not followed" in first.content and len(srv.requests) == 2
    assert second.status == "ok" and second.content.endswith("[truncated]") and len(second.content) < 1100


async def test_bad_arguments_and_unknown_tools_go_back_to_the_model(loopback):
    async with ToolServer() as srv:
        r = runner(srv.url)
        bad_json = await r.run(req('{"day": "tue'))
        bad_value = await r.run(req({"day": "sunday"}))
        unknown = await r.run(req({}, name="format_disk"))
    assert bad_json.status == "error" and "not valid JSON" in bad_json.content
    assert bad_value.status == "error" and "$.day" in bad_value.content
    assert unknown.status == "refused" and srv.requests == []
    assert [rec["status"] for rec in r.requests.records] == ["error", "error", "refused"]


async def test_filler_is_said_only_when_the_tool_outlasts_the_deadline(loopback):
    clock = EventClock()
    said = []

    async def filler():
        said.append(clock.now())

    async with ToolServer([(200, {"slot": "3pm"})], gated=True) as srv:
        r = runner(srv.url, clock)
        task = asyncio.create_task(r.run_with_filler(req({"day": "monday"}), filler))
        await srv.arrived.wait()  # the tool is running ...
        clock.fire.set()  # ... and the 700 ms deadline passes
        while not said:
            await asyncio.sleep(0)
        assert not task.done()
        srv.gate.set()  # the tool answers
        out = await task
    assert out.status == "ok" and len(said) == 1
    async with ToolServer([(200, {"slot": "4pm"})]) as fast:  # answers before the deadline: no filler
        out = await runner(fast.url, EventClock()).run_with_filler(req({"day": "monday"}), filler)
    assert out.status == "ok" and len(said) == 1


async def test_timeouts_are_reported(loopback):
    async with ToolServer(gated=True) as srv:
        tool = HttpTool("book_slot", "", PARAMS, "POST", srv.url, {}, 0.5)
        r = ToolRunner(Call(), RuntimeActions(7, SECRET, [], [], [tool]))
        out = await r.run(req({"day": "monday"}))
    assert out.status == "timeout" and "timed out" in out.content


@pytest.mark.django_db(transaction=True)
async def test_builtins():
    r = ToolRunner(Call(), RuntimeActions(None, SECRET, ["end_call", "add_to_do_not_call", "send_dtmf",
                                                         "transfer_call"], ["200"], []))
    assert (await r.run(req({}, name="end_call"))).status == "ok" and r.requests.hangup
    assert (await r.run(req({"reason": "asked"}, name="add_to_do_not_call"))).status == "ok"
    assert await sync_to_async(DoNotCall.objects.filter(phone="+14155552671").exists)()
    assert (await r.run(req({"digits": "12#"}, name="send_dtmf"))).status == "ok" and len(r.call.played[0]) > 3000
    refused = await r.run(req({"target": "sip:boss@evil.example"}, name="transfer_call"))
    assert refused.status == "refused" and not r.requests.transfer_to


def test_tool_schema_is_validated_when_saved(db):
    c = Campaign.objects.create(name="A", extension="100")
    with pytest.raises(InputError) as err:
        campaign_tools.create_tool(c.pk, {"name": "t", "url": "https://api.example.com/x",
                                          "parameters": {"type": "object", "properties": {"a": {"type": "strin"}}}})
    assert err.value.field.startswith("parameters")
    with pytest.raises(InputError):
        campaign_tools.create_tool(c.pk, {"name": "t", "url": "https://api.example.com/x",
                                          "parameters": {"type": "object", "requried": ["a"]}})
    with pytest.raises(InputError):
        campaign_tools.create_tool(c.pk, {"name": "end_call", "url": "https://api.example.com/x"})
    t = campaign_tools.create_tool(c.pk, {"name": "book", "url": "https://api.example.com/x", "parameters": PARAMS,
                                          "headers": {"Authorization": "Bearer x"}})
    assert campaign_tools.tool_dict(t)["header_names"] == ["Authorization"]
