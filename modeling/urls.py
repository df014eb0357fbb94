from django.urls import path

from modeling.views import estimates, gallery, validation

app_name = "modeling"

urlpatterns: list = [
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
    path("studies/<slug:slug>/estimates/", estimates.estimates, name="estimates"),
    path("studies/<slug:slug>/exports/", estimates.exports, name="exports"),
    path("studies/<slug:slug>/export/", estimates.export, name="export"),
    path("studies/<slug:slug>/appendix/", estimates.appendix, name="appendix"),
]
