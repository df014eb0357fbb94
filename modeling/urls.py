from django.urls import path

from modeling import views

app_name = "modeling"

urlpatterns = [
    path("studies/<slug:slug>/models/", views.study_models, name="study_models"),
    path("studies/<slug:slug>/models/status/", views.study_models_status, name="status"),
    path("studies/<slug:slug>/models/retrain/", views.retrain, name="retrain"),
    path(
        "studies/<slug:slug>/models/runs/<int:run_id>/cancel/", views.run_cancel, name="run_cancel"
    ),
    path("studies/<slug:slug>/models/v<int:number>/", views.version_detail, name="version_detail"),
    path("studies/<slug:slug>/models/v<int:number>/activate/", views.activate, name="activate"),
]
