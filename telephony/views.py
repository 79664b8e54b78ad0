"""Staff-only file view for call recordings (DEBUG is off, so MEDIA is not served blindly)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404

from aioptions.inputs import PK_MAX

from .models import Call


@staff_member_required
def recording(request, call_id: int):
    if not 1 <= call_id <= PK_MAX:  # larger ids overflow the database driver (a 500, not a 404)
        raise Http404("no recording for this call")
    call = Call.objects.filter(pk=call_id).only("recording").first()
    if call is None or not call.recording:
        raise Http404("no recording for this call")
    path = (Path(settings.MEDIA_ROOT) / call.recording.name).resolve()
    if Path(settings.MEDIA_ROOT).resolve() not in path.parents or not path.exists():
        raise Http404("recording file missing")
    return FileResponse(open(path, "rb"), content_type="audio/wav", filename=f"call-{call_id}.wav")
