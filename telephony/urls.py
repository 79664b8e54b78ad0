from django.urls import path

from . import api, views

app_name = "telephony"

urlpatterns = [
    path("api/v1/sip/start", api.start, name="sip-start"),
    path("api/v1/sip/stop", api.stop, name="sip-stop"),
    path("api/v1/sip/status", api.status, name="sip-status"),
    path("api/v1/sip/nodes/<int:node_id>/drain", api.drain, name="sip-node-drain"),
    path("calls/<int:call_id>/recording.wav", views.recording, name="recording"),
]
