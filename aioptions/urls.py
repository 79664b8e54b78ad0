from django.urls import path

from . import api, views

app_name = "aioptions"

urlpatterns = [
    path("api/v1/ai-options/voices", api.voices, name="api-voices"),
    path("api/v1/ai-options/providers", api.providers, name="api-providers"),
    path("api/v1/ai-options/config", api.config, name="api-config"),
    path("ai-options/", views.options_page, name="page"),
    path("ai-options/save", views.save, name="save"),
    path("ai-options/turn", views.save_turn, name="save-turn"),
    path("ai-options/panel", views.panel, name="panel"),
]
