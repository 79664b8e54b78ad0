from django.urls import path

from . import views_preview

urlpatterns = [
    path("api/v1/ai-options/voices/<str:voice_id>/preview", views_preview.voice_preview, name="voice-preview"),
]
