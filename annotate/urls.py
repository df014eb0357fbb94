from django.urls import path

from annotate.views import coding, home, imports

app_name = "annotate"

urlpatterns = [
    path("code/<slug:slug>/", coding.code, name="code"),
    path("studies/<slug:slug>/", home.study_detail, name="study_detail"),
    path("studies/<slug:slug>/imports/new/", imports.import_new, name="import_new"),
    path("imports/<int:pk>/", imports.import_detail, name="import_detail"),
    path("imports/<int:pk>/status/", imports.import_status_json, name="import_status"),
    path("faces/<int:pk>/source/", imports.face_source, name="face_source"),
    path("health/ping/", home.health_ping, name="health_ping"),
]
