from django.urls import path, re_path

from . import api, api_contacts, api_dialer, api_tools, api_trunks, views_jobs, views_progress

app_name = "campaigns"

urlpatterns = [
    path("api/v1/campaigns", api.campaigns, name="api-list"),
    path("api/v1/campaigns/<int:campaign_id>/voice", api.campaign_voice, name="api-voice"),
    path("api/v1/trunks", api_trunks.trunk_list, name="api-trunks"),
    path("api/v1/campaigns/<int:campaign_id>/contacts", api_contacts.campaign_contacts, name="api-contacts"),
    path("api/v1/dnc", api_contacts.dnc, name="api-dnc"),
    re_path(r"^api/v1/campaigns/(?P<campaign_id>[0-9]{1,18})/(?P<action>start|pause|stop)$",
            api_dialer.campaign_action, name="api-dialer"),
    path("api/v1/campaigns/<int:campaign_id>/progress", api_dialer.campaign_progress, name="api-progress"),
    path("campaigns/<int:campaign_id>/progress/", views_progress.progress_page, name="progress"),
    path("campaigns/<int:campaign_id>/progress/partial/", views_progress.progress_partial, name="progress-partial"),
    path("campaigns/jobs/<str:token>/", views_jobs.job_page, name="job"),
    path("campaigns/jobs/<str:token>/step/", views_jobs.job_step, name="job-step"),
    path("campaigns/jobs/<str:token>/cancel/", views_jobs.job_cancel, name="job-cancel"),
    path("api/v1/trunks/<int:trunk_id>", api_trunks.trunk_detail, name="api-trunk"),
    path("api/v1/campaigns/<int:campaign_id>/tools", api_tools.tool_list, name="api-tools"),
    path("api/v1/campaigns/<int:campaign_id>/tools/<int:tool_id>", api_tools.tool_detail, name="api-tool"),
    path("api/v1/campaigns/<int:campaign_id>/actions", api_tools.actions, name="api-actions"),
    path("api/v1/campaigns/<int:campaign_id>/actions/rotate-secret", api_tools.rotate_secret,
         name="api-rotate-secret"),
]
