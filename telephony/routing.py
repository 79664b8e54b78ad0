from django.urls import path

from .consumers import CallLiveConsumer

websocket_urlpatterns = [path("ws/calls/<int:call_id>/", CallLiveConsumer.as_asgi())]
