from django.urls import path

from .consumers import AIOptionsConsumer

websocket_urlpatterns = [path("api/v1/ai-options/ws", AIOptionsConsumer.as_asgi())]
