from django.urls import path

from modeling.views import estimates, gallery, validation
from modeling.views import models as views

app_name = "modeling"

urlpatterns = [
    path("studies/<slug:slug>/models/", views.study_models, name="study_models"),
    path("studies/<slug:slug>/models/status/", views.study_models_status, name="status"),
    path("studies/<slug:slug>/models/retrain/", views.retrain, name="retrain"),
    path(
        "studies/<slug:slug>/models/runs/<int:run_id>/cancel/", views.run_cancel, name="run_cancel"
    ),
    path(
        "studies/<slug:slug>/models/predictions/<int:run_id>/cancel/",
        views.prediction_cancel,
        name="prediction_cancel",
    ),
    path("studies/<slug:slug>/models/v<int:number>/", views.version_detail, name="version_detail"),
    path("studies/<slug:slug>/models/v<int:number>/activate/", views.activate, name="activate"),
    path(
        "studies/<slug:slug>/models/v<int:number>/predict/",
        views.predict_shadow,
        name="predict_shadow",
    ),
    # validation and estimates (issues 6 and 7)
    path("studies/<slug:slug>/validation/", validation.validation_rounds, name="validation_rounds"),
    path("validation/<int:round_id>/", validation.validation_round, name="validation_round"),
    path(
        "validation/<int:round_id>/compute/",
        validation.validation_compute,
        name="validation_compute",
    ),
    path("studies/<slug:slug>/compare/", validation.version_compare, name="version_compare"),
    path("versions/<int:version_id>/gallery/", gallery.gallery, name="gallery"),
    path(
        "versions/<int:version_id>/faces/<int:face_id>/triage/",
        gallery.triage,
        name="triage",
    ),
    path(
        "versions/<int:version_id>/faces/<int:face_id>/triage/undo/",
        gallery.triage_undo_view,
        name="triage_undo",
    ),
    path("studies/<slug:slug>/estimates/", estimates.estimates, name="estimates"),
    path("studies/<slug:slug>/exports/", estimates.exports, name="exports"),
    path("studies/<slug:slug>/export/", estimates.export, name="export"),
    path("studies/<slug:slug>/appendix/", estimates.appendix, name="appendix"),
]
