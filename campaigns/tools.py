"""Per-campaign actions (issue 16): HTTP tools, built-ins, transfer targets, the webhook.

One validation for the admin and the API (``clean_tool``/``clean_actions``), the writes, the JSON
shape, and ``runtime_actions()``: the plain snapshot a call's tool runner reads once per turn (so
the bridge never touches the ORM while a tool runs).
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction

from aioptions import inputs
from aioptions.inputs import InputError

from . import netguard, schema
from .models import BUILTIN_TOOLS, Campaign, CampaignActions, CampaignTool
from .outbound import Refused, route

_TOOL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_HEADER = re.compile(r"[A-Za-z0-9-]{1,64}")
_RESERVED_HEADERS = {"host", "content-length", "content-type", "transfer-encoding", "connection",
                     "x-talky-signature", "x-talky-timestamp", "x-talky-delivery"}
TOOL_FIELDS = ("name", "description", "parameters", "method", "url", "headers", "timeout_s", "enabled")
ACTION_FIELDS = ("builtins", "transfer_targets", "webhook_url", "extraction_schema")


class NotFound(LookupError):
    pass


def _headers(value: Any) -> dict:
    if not isinstance(value, dict) or len(value) > 20:
        raise InputError("headers must be an object of at most 20 headers", field="headers")
    out = {}
    for k, v in value.items():
        if not _HEADER.fullmatch(k) or k.lower() in _RESERVED_HEADERS:
            raise InputError(f"headers: {inputs.show(k, 40)} is not a header we let you set", field="headers")
        out[k] = inputs.name(v, f"headers.{k}", max_len=1000, allow_empty=True)
    return out


def _url(value: Any, field: str = "url") -> str:
    try:
        netguard.check_url(value, field)
    except netguard.Blocked as exc:
        raise InputError(str(exc), field=field) from None
    return value


def clean_tool(data: dict, *, partial: bool = False) -> dict:
    """Validated tool fields; the parameters must be an object schema of our subset (campaigns.schema)."""
    inputs.only_keys(data, set(TOOL_FIELDS))
    if not partial:
        for key in ("name", "url"):
            if key not in data:
                raise InputError(f"{key} is required", field=key)
    checks = {
        "name": lambda v: _tool_name(v),
        "description": lambda v: inputs.text(v, "description", max_len=1000),
        "parameters": lambda v: schema.check_schema(v or {"type": "object", "properties": {}}),
        "method": lambda v: _choice(v, "method", [m for m, _ in CampaignTool.Method.choices]),
        "url": _url,
        "headers": _headers,
        "timeout_s": lambda v: inputs.number(v, "timeout_s", 0.5, 30),
        "enabled": lambda v: _bool(v, "enabled"),
    }
    return {key: checks[key](value) for key, value in data.items()}


def _tool_name(v: Any) -> str:
    if not isinstance(v, str) or not _TOOL_NAME.fullmatch(v):
        raise InputError("name: a letter, then up to 63 letters, digits, _ or -", field="name")
    if v in BUILTIN_TOOLS:
        raise InputError(f"name: {v} is a built-in tool", field="name")
    return v


def _choice(v: Any, field: str, allowed: list[str]) -> str:
    if v not in allowed:
        raise InputError(f"{field} must be one of {', '.join(allowed)}", field=field)
    return v


def _bool(v: Any, field: str) -> bool:
    if not isinstance(v, bool):
        raise InputError(f"{field} must be true or false", field=field)
    return v


def check_target(target: str, campaign_id: int | None) -> str:
    """A transfer target: a number within the campaign trunk's prefixes, a sip: URI, or an
    extension (outbound.route's rules; DNC applies too). Raises InputError when refused."""
    try:
        return route(target, campaign_id).dest
    except Refused as exc:
        raise InputError(f"transfer_targets: {inputs.show(target, 40)}: {exc}", field="transfer_targets") from None


def clean_actions(data: dict, campaign_id: int) -> dict:
    inputs.only_keys(data, set(ACTION_FIELDS))
    out: dict[str, Any] = {}
    if "builtins" in data:
        value = data["builtins"]
        if not isinstance(value, list) or any(v not in BUILTIN_TOOLS for v in value):
            raise InputError(f"builtins: a list of {', '.join(BUILTIN_TOOLS)}", field="builtins")
        out["builtins"] = list(dict.fromkeys(value))
    if "transfer_targets" in data:
        raw = data["transfer_targets"]
        items = raw if isinstance(raw, list) else inputs.text(raw or "", "transfer_targets", max_len=4000).replace(
            ",", "\n").splitlines()
        out["transfer_targets"] = "\n".join(check_target(str(t).strip(), campaign_id) for t in items if str(t).strip())
    if "webhook_url" in data:
        out["webhook_url"] = _url(data["webhook_url"], "webhook_url") if data["webhook_url"] else ""
    if "extraction_schema" in data:
        schema.expand_fields(data["extraction_schema"])
        out["extraction_schema"] = data["extraction_schema"] or {}
    return out


# --- writes ----------------------------------------------------------------------------------
def actions_of(campaign_id: int) -> CampaignActions:
    """The campaign's actions row, created (with a fresh signing secret) on first use."""
    if not Campaign.objects.filter(pk=campaign_id).exists():
        raise NotFound(f"campaign {campaign_id} does not exist")
    row, _ = CampaignActions.objects.get_or_create(
        campaign_id=campaign_id, defaults={"signing_secret": secrets.token_hex(32)})
    if not row.signing_secret:
        row.signing_secret = secrets.token_hex(32)
        row.save(update_fields=["signing_secret"])
    return row


def update_actions(campaign_id: int, data: dict) -> CampaignActions:
    row = actions_of(campaign_id)
    for key, value in clean_actions(data, campaign_id).items():
        setattr(row, key, value)
    row.save()
    return row


def rotate_secret(campaign_id: int) -> str:
    row = actions_of(campaign_id)
    row.signing_secret = secrets.token_hex(32)
    row.save(update_fields=["signing_secret", "updated_at"])
    return row.signing_secret


def signing_secret(campaign_id: int) -> str:
    """``TALKY_SIGNING_SECRET_<id>`` from the environment when set, else the stored one."""
    return os.environ.get(f"TALKY_SIGNING_SECRET_{campaign_id}") or actions_of(campaign_id).signing_secret


def create_tool(campaign_id: int, data: dict) -> CampaignTool:
    if not Campaign.objects.filter(pk=campaign_id).exists():
        raise NotFound(f"campaign {campaign_id} does not exist")
    fields = clean_tool(data)
    try:
        with transaction.atomic():
            return CampaignTool.objects.create(campaign_id=campaign_id, **fields)
    except IntegrityError:
        raise InputError(f"a tool named {fields['name']} exists already", field="name") from None


def update_tool(campaign_id: int, tool_id: int, data: dict) -> CampaignTool:
    tool = CampaignTool.objects.filter(pk=tool_id, campaign_id=campaign_id).first()
    if tool is None:
        raise NotFound(f"tool {tool_id} does not exist")
    for key, value in clean_tool(data, partial=True).items():
        setattr(tool, key, value)
    try:
        with transaction.atomic():
            tool.save()
    except IntegrityError:
        raise InputError(f"a tool named {tool.name} exists already", field="name") from None
    return tool


def delete_tool(campaign_id: int, tool_id: int) -> bool:
    return CampaignTool.objects.filter(pk=tool_id, campaign_id=campaign_id).delete()[0] > 0


def tool_dict(t: CampaignTool) -> dict:
    """Header values are not echoed (they often carry credentials): only their names."""
    return {"id": t.pk, "campaign_id": t.campaign_id, "name": t.name, "description": t.description,
            "parameters": t.parameters, "method": t.method, "url": t.url, "header_names": sorted(t.headers),
            "timeout_s": t.timeout_s, "enabled": t.enabled}


def actions_dict(a: CampaignActions) -> dict:
    return {"campaign_id": a.campaign_id, "builtins": a.builtins, "transfer_targets": a.targets,
            "webhook_url": a.webhook_url, "extraction_schema": a.extraction_schema,
            "secret_from_env": bool(os.environ.get(f"TALKY_SIGNING_SECRET_{a.campaign_id}"))}


# --- the runtime snapshot (read by the bridge at each turn) ------------------------------------
@dataclass
class HttpTool:
    name: str
    description: str
    parameters: dict
    method: str
    url: str
    headers: dict
    timeout_s: float


@dataclass
class RuntimeActions:
    campaign_id: int | None = None
    secret: str = ""
    builtins: list[str] = field(default_factory=list)
    transfer_targets: list[str] = field(default_factory=list)
    tools: list[HttpTool] = field(default_factory=list)
    webhook_url: str = ""
    extraction_schema: dict = field(default_factory=dict)


def runtime_actions(campaign_id: int | None) -> RuntimeActions:
    """Everything a call's tool runner needs, as plain data (sync, ORM: call via sync_to_async)."""
    if not campaign_id or not Campaign.objects.filter(pk=campaign_id).exists():
        return RuntimeActions(builtins=["end_call"])
    row = actions_of(campaign_id)
    tools = [HttpTool(t.name, t.description, t.parameters, t.method, t.url, t.headers, t.timeout_s)
             for t in CampaignTool.objects.filter(campaign_id=campaign_id, enabled=True)]
    return RuntimeActions(campaign_id, signing_secret(campaign_id), list(row.builtins), row.targets, tools,
                          row.webhook_url, row.extraction_schema)
