from django.urls import path

from .browser.consumer import BrowserCallConsumer
from .consumers import CallLiveConsumer

websocket_urlpatterns = [
    path("ws/calls/<int:call_id>/", CallLiveConsumer.as_asgi()),
    path("ws/talk/", BrowserCallConsumer.as_asgi()),
]
