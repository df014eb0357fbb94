from django.urls import path

from annotate.views import coding, home

app_name = "annotate"

urlpatterns = [
    path("code/<slug:slug>/", coding.code, name="code"),
    path("studies/<slug:slug>/", home.study_detail, name="study_detail"),
    path("health/ping/", home.health_ping, name="health_ping"),
]
