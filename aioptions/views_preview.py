"""GET /api/v1/ai-options/voices/<voice_id>/preview : a WAV of the voice (staff only: it costs
provider money). Cached on disk; ETag/304; X-Preview-Engine says which engine actually spoke.

The text is user input that reaches a TTS engine, possibly a local subprocess: it is bounded and
free of control characters here, and the offline engine takes it on stdin, never as an argument.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import HttpResponse

from . import inputs
from .campaign_hooks import hooks
from .http import api_view, json_error
from .preview import service


@api_view(methods=("GET",))
async def voice_preview(request, voice_id: str):
    voice_id = inputs.name(voice_id, "voice_id")
    text = request.GET.get("text")
    if text is not None:
        text = inputs.text(text, "text", max_len=service.MAX_CHARS)
    elif "campaign" in request.GET:
        campaign_id = inputs.pk(request.GET["campaign"], "campaign")
        text = await sync_to_async(hooks.preview_text)(campaign_id)
        if text is None:
            return json_error("unknown campaign", 404, "campaign")
    try:
        preview = await service.get_preview(voice_id, text)
    except service.PreviewError as exc:
        return json_error(str(exc), exc.status, "voice_id" if exc.status == 404 else None)
    etag = f'"{preview.key}"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=86400", "X-Preview-Engine": preview.engine,
               "X-Preview-Cache": "hit" if preview.cached else "miss"}
    if request.headers.get("If-None-Match") == etag:
        return HttpResponse(status=304, headers=headers)
    resp = HttpResponse(preview.wav, content_type="audio/wav", headers=headers)
    resp["Content-Length"] = str(len(preview.wav))
    return resp
