"""URL map. Each app owns its routes; this file only mounts them."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/ai-options/", permanent=False)),
    path("admin/", admin.site.urls),
    path("", include("aioptions.urls")),
    path("", include("campaigns.urls")),
    path("", include("telephony.urls")),
    path("", include("telephony.urls_dashboard")),
    path("", include("telephony.urls_pipeline")),
    path("", include("telephony.urls_outbound")),
    path("", include("aioptions.urls_preview")),
    path("", include("telephony.metrics.urls")),
]

handler400 = "talky.errors.bad_request"
handler403 = "talky.errors.permission_denied"
handler404 = "talky.errors.not_found"
handler500 = "talky.errors.server_error"
