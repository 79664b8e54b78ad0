from django.urls import path

from . import api_calls

urlpatterns = [
    path("api/v1/calls", api_calls.place_call, name="api-place-call"),
]
