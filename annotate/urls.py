from django.urls import path

from annotate.views import agreement, coding, home

app_name = "annotate"

urlpatterns = [
    path("code/<slug:slug>/", coding.code, name="code"),
    path("code/<slug:slug>/next/", coding.code_next, name="code_next"),
    path("code/<slug:slug>/submit/", coding.code_submit, name="code_submit"),
    path("code/<slug:slug>/undo/", coding.code_undo, name="code_undo"),
    path("code/<slug:slug>/source/<int:assignment_id>/", coding.code_source, name="code_source"),
    path("studies/<slug:slug>/", home.study_detail, name="study_detail"),
    path("studies/<slug:slug>/agreement/", agreement.agreement, name="agreement"),
    path("studies/<slug:slug>/adjudication/", agreement.adjudication, name="adjudication"),
    path(
        "studies/<slug:slug>/adjudication/<int:face_id>/",
        agreement.adjudicate,
        name="adjudicate",
    ),
    path("health/ping/", home.health_ping, name="health_ping"),
]
