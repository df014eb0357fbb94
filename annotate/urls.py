from django.urls import path

from annotate.views import agreement, coding, home, imports, media

app_name = "annotate"

urlpatterns = [
    path("code/<slug:slug>/", coding.code, name="code"),
    path("code/<slug:slug>/next/", coding.code_next, name="code_next"),
    path("code/<slug:slug>/submit/", coding.code_submit, name="code_submit"),
    path("code/<slug:slug>/undo/", coding.code_undo, name="code_undo"),
    path("code/<slug:slug>/source/<int:assignment_id>/", coding.code_source, name="code_source"),
    path("studies/<slug:slug>/", home.study_detail, name="study_detail"),
    path("studies/<slug:slug>/imports/new/", imports.import_new, name="import_new"),
    path("imports/<int:pk>/", imports.import_detail, name="import_detail"),
    path("imports/<int:pk>/status/", imports.import_status_json, name="import_status"),
    path("faces/<int:pk>/crop/", media.face_crop, name="face_crop"),
    path("faces/<int:pk>/source/", media.face_source, name="face_source"),
    path("images/<int:pk>/", media.image_display, name="image_display"),
    path("images/<int:pk>/original/", media.image_original, name="image_original"),
    path("studies/<slug:slug>/agreement/", agreement.agreement, name="agreement"),
    path("studies/<slug:slug>/adjudication/", agreement.adjudication, name="adjudication"),
    path(
        "studies/<slug:slug>/adjudication/<int:face_id>/",
        agreement.adjudicate,
        name="adjudicate",
    ),
    path("health/ping/", home.health_ping, name="health_ping"),
]
