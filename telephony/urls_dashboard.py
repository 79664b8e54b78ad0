from django.urls import path

from . import views_dashboard as views

urlpatterns = [
    path("calls/", views.calls, name="calls"),
    path("calls/<int:call_id>/", views.call_detail, name="call-detail"),
    path("calls/<int:call_id>/live/", views.call_live, name="call-live"),
]
