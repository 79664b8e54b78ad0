from django.urls import path

from . import api, api_contacts, api_trunks

app_name = "campaigns"

urlpatterns = [
    path("api/v1/campaigns", api.campaigns, name="api-list"),
    path("api/v1/campaigns/<int:campaign_id>/voice", api.campaign_voice, name="api-voice"),
    path("api/v1/trunks", api_trunks.trunk_list, name="api-trunks"),
    path("api/v1/campaigns/<int:campaign_id>/contacts", api_contacts.campaign_contacts, name="api-contacts"),
    path("api/v1/dnc", api_contacts.dnc, name="api-dnc"),
    path("api/v1/trunks/<int:trunk_id>", api_trunks.trunk_detail, name="api-trunk"),
]
