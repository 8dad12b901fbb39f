from django.urls import path

from risk import api

urlpatterns = [
    path("risk/limits", api.LimitsView.as_view(), name="risk-limits"),
    path("controls/kill-switch", api.KillSwitchView.as_view(), name="kill-switch"),
    path("controls/mode-transition", api.ModeTransitionView.as_view(), name="mode-transition"),
    path("controls/mode/<slug:slug>", api.ModeView.as_view(), name="mode"),
]
