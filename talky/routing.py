"""WebSocket routes, collected from the apps that own them."""

from aioptions.routing import websocket_urlpatterns as aioptions_ws
from telephony.routing import websocket_urlpatterns as telephony_ws

websocket_urlpatterns = [*aioptions_ws, *telephony_ws]
