"""Per-call work taken off the event loop (issue 18, stalls under load): the LLM pool is pre-warmed
once per process rather than once per call, log redaction no longer lists every setting per line,
and the bridge imports its lazily loaded modules before it listens. Behaviour only, no timings."""

import sys

import pytest
from django.test import override_settings

from aioptions import logsafe
from aioptions.providers import netpool


async def test_a_pooled_client_is_warmed_once_per_ttl_and_again_after_a_failure():
    pool = netpool.http_client("warmtest", "http://127.0.0.1:9")
    try:
        assert netpool.claim_warm_up(pool, now=100.0)  # the first call warms
        assert not netpool.claim_warm_up(pool, now=100.5)  # calls arriving meanwhile do not
        assert not netpool.claim_warm_up(pool, now=100.0 + netpool.WARM_TTL_S - 1)
        assert netpool.claim_warm_up(pool, now=100.0 + netpool.WARM_TTL_S + 1)  # keep-alive refreshed
        netpool.forget_warm_up(pool)  # that warm-up failed: the next call tries again
        assert netpool.claim_warm_up(pool, now=200.0)
    finally:
        await netpool.aclose_pools()


def test_a_client_of_its_own_always_warms():
    own = object()
    assert netpool.claim_warm_up(own, now=1.0) and netpool.claim_warm_up(own, now=1.1)
    assert netpool.claim_warm_up(None, now=1.0)


@pytest.mark.parametrize("name", ["GROQ_API_KEY", "BRAND_NEW_SECRET"])
def test_redaction_sees_secrets_set_after_the_names_were_cached(name):
    logsafe.redact("warm the cache")
    with override_settings(**{name: "s3cr3t-value-1234"}):
        assert "s3cr3t-value-1234" not in logsafe.redact("token s3cr3t-value-1234 in a line")
    assert "s3cr3t-value-1234" in logsafe.redact("token s3cr3t-value-1234 in a line")  # gone with the override


def test_the_bridge_preloads_what_calls_would_import_on_the_loop():
    from telephony.bridge import runner

    runner._preload("pipeline")
    for name in runner._PRELOAD + runner._PRELOAD_AGENT["pipeline"]:
        assert name in sys.modules
