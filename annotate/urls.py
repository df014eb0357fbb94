from django.urls import path

from annotate.views import (
    agreement,
    codebook,
    coding,
    gold,
    home,
    imports,
    media,
    studies,
    team,
)

app_name = "annotate"

urlpatterns = [
    path("code/<slug:slug>/", coding.code, name="code"),
    path("code/<slug:slug>/next/", coding.code_next, name="code_next"),
    path("code/<slug:slug>/submit/", coding.code_submit, name="code_submit"),
    path("code/<slug:slug>/undo/", coding.code_undo, name="code_undo"),
    path("code/<slug:slug>/stop/", coding.code_stop, name="code_stop"),
    path("code/<slug:slug>/source/<int:assignment_id>/", coding.code_source, name="code_source"),
    path("studies/new/", studies.study_new, name="study_new"),
    path("studies/<slug:slug>/", home.study_detail, name="study_detail"),
    path("studies/<slug:slug>/edit/", studies.study_edit, name="study_edit"),
    path("studies/<slug:slug>/members/", studies.study_members_page, name="study_members"),
    path("studies/<slug:slug>/imports/new/", imports.import_new, name="import_new"),
    path(
        "studies/<slug:slug>/imports/labels/new/",
        imports.labels_import_new,
        name="labels_import_new",
    ),
    path("studies/<slug:slug>/codebook/", codebook.codebook, name="codebook"),
    path("studies/<slug:slug>/codebook/add/", codebook.codebook_add, name="codebook_add"),
    path("studies/<slug:slug>/codebook/remove/", codebook.codebook_remove, name="codebook_remove"),
    path("studies/<slug:slug>/codebook/move/", codebook.codebook_move, name="codebook_move"),
    path("code/<slug:slug>/codebook/<int:pk>/crop/", codebook.codebook_crop, name="codebook_crop"),
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
    path("studies/<slug:slug>/gold/", gold.gold_list, name="gold_list"),
    path("studies/<slug:slug>/gold/settings/", gold.gold_settings, name="gold_settings"),
    path(
        "studies/<slug:slug>/gold/mark-imported/",
        gold.gold_mark_all_imported,
        name="gold_mark_imported",
    ),
    path("studies/<slug:slug>/gold/<int:face_id>/mark/", gold.gold_face_mark, name="gold_mark"),
    path(
        "studies/<slug:slug>/gold/<int:face_id>/unmark/", gold.gold_face_unmark, name="gold_unmark"
    ),
    path(
        "studies/<slug:slug>/gold/<int:face_id>/correct/",
        gold.gold_face_correct,
        name="gold_correct",
    ),
    path("studies/<slug:slug>/gold/coders/exclude/", gold.gold_coder_exclude, name="gold_exclude"),
    path("studies/<slug:slug>/gold/coders/include/", gold.gold_coder_include, name="gold_include"),
    path("health/ping/", home.health_ping, name="health_ping"),
    path("studies/<slug:slug>/invitations/", team.invite_list, name="invite_list"),
    path(
        "studies/<slug:slug>/invitations/<int:pk>/revoke/",
        team.invite_revoke,
        name="invite_revoke",
    ),
    path("studies/<slug:slug>/invitations/import/", team.invite_import, name="invite_import"),
    path(
        "studies/<slug:slug>/invitations/import/links/",
        team.invite_import_links,
        name="invite_import_links",
    ),
    path("join/<slug:token>/", team.invite_join, name="invite_join"),
    path("studies/<slug:slug>/crowd/", team.crowd_list, name="crowd_list"),
    path("studies/<slug:slug>/crowd/<int:pk>/close/", team.crowd_close, name="crowd_close"),
    path("studies/<slug:slug>/crowd/export/", team.crowd_export, name="crowd_export"),
    path("crowd/<slug:token>/", team.crowd_start, name="crowd_start"),
    path("code/<slug:slug>/done/", team.crowd_done, name="crowd_done"),
]
