from django.urls import path

from . import api

app_name = "campaigns"

urlpatterns = [
    path("api/v1/campaigns", api.campaigns, name="api-list"),
    path("api/v1/campaigns/<int:campaign_id>/voice", api.campaign_voice, name="api-voice"),
]
