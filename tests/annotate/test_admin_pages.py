"""The Django admin opens for the issue-15 models, never shows a token, and links images to
the app's media views (the removed /media/ path would 404)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from annotate.models import (
    CodebookExample,
    CrowdWorker,
    Face,
    ImportBatch,
    ImportChunk,
    Invitation,
)
from annotate.roles import Role
from annotate.services.crowd import crowd_link_create, crowd_worker_enter
from annotate.services.invitations import invitation_create
from tests.factories import make_faces, make_source_image, make_study, make_user

pytestmark = pytest.mark.django_db

MEDIA_LINK = re.compile(r'href="(/(?:images|faces)/\d+/(?:[a-z]+/)?)"')


@pytest.fixture
def rows(settings):
    study = make_study(attributes_asked=[])
    researcher = make_user(Role.RESEARCHER, study=study)
    image = make_source_image(study)
    face = make_faces(study, 1)[0]
    Face.objects.filter(pk=face.pk).update(
        source_image=image, box_x=10, box_y=10, box_w=40, box_h=40
    )
    batch = ImportBatch.objects.create(
        study=study, created_by=researcher, upload="uploads/2026/11/faces.zip"
    )
    ImportChunk.objects.create(batch=batch, start=0, stop=10)
    invitation, _ = invitation_create(
        study=study, role="coder", days=7, max_uses=1, created_by=researcher
    )
    link, _ = crowd_link_create(study=study, faces_per_worker=5, created_by=researcher)
    crowd_worker_enter(link=link, pid="w1")
    CodebookExample.objects.create(study=study, face=face, question="gender", answer="female")
    return {
        "sourceimage": image,
        "face": face,
        "importbatch": batch,
        "invitation": invitation,
        "crowdlink": link,
        "crowdworker": CrowdWorker.objects.get(),
        "codebookexample": CodebookExample.objects.get(),
    }


@pytest.fixture
def admin_client(client):
    client.force_login(make_user(Role.ADMIN))
    return client


@pytest.mark.parametrize(
    "model",
    [
        "importbatch",
        "sourceimage",
        "face",
        "invitation",
        "crowdlink",
        "crowdworker",
        "codebookexample",
    ],
)
def test_changelist_and_change_page_open_for_a_superuser(admin_client, rows, model):
    changelist = admin_client.get(reverse(f"admin:annotate_{model}_changelist"))
    assert changelist.status_code == 200
    change = admin_client.get(reverse(f"admin:annotate_{model}_change", args=[rows[model].pk]))
    assert change.status_code == 200


def test_import_chunks_show_on_their_batch(admin_client, rows):
    batch = rows["importbatch"]
    html = admin_client.get(reverse("admin:annotate_importbatch_change", args=[batch.pk]))
    assert 'name="chunks-TOTAL_FORMS" value="1"' in html.content.decode()
    assert "/media/" not in html.content.decode()  # the upload is named, not linked


@pytest.mark.parametrize("model", ["invitation", "crowdlink"])
def test_token_hashes_are_never_shown(admin_client, rows, model):
    row = rows[model]
    html = admin_client.get(reverse(f"admin:annotate_{model}_change", args=[row.pk]))
    assert row.token_hash not in html.content.decode()
    assert 'name="token_hash"' not in html.content.decode()


def test_invitation_list_shows_uses_of_max(admin_client, rows):
    html = admin_client.get(reverse("admin:annotate_invitation_changelist")).content.decode()
    assert "0/1" in html


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("sourceimage", {"annotate:image_original", "annotate:image_display"}),
        ("face", {"annotate:face_crop", "annotate:face_source"}),
    ],
)
def test_image_links_go_to_the_media_views_and_open(admin_client, rows, model, expected):
    row = rows[model]
    html = admin_client.get(reverse(f"admin:annotate_{model}_change", args=[row.pk]))
    html = html.content.decode()
    assert "/media/" not in html
    assert 'type="file"' not in html  # the raw file fields are not in the form
    links = set(MEDIA_LINK.findall(html))
    assert links == {reverse(name, args=[row.pk]) for name in expected}
    for url in links:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert response["Content-Type"].startswith("image/")


def test_saving_a_face_in_the_admin_keeps_its_crop(admin_client, rows):
    face = rows["face"]
    crop_before = face.crop.name
    url = reverse("admin:annotate_face_change", args=[face.pk])
    page = admin_client.get(url)
    form = page.context["adminform"].form
    data = {
        name: ("" if value is None else value)
        for name, value in form.initial.items()
        if name in form.fields
    }
    data["priority"] = 7
    response = admin_client.post(url, data)
    assert response.status_code == 302  # saved, not the form again with errors
    face.refresh_from_db()
    assert face.priority == 7 and face.crop.name == crop_before


def test_an_invitation_can_be_revoked_in_the_admin_without_touching_its_token(admin_client, rows):
    invitation = rows["invitation"]
    url = reverse("admin:annotate_invitation_change", args=[invitation.pk])
    form = admin_client.get(url).context["adminform"].form
    assert "token_hash" not in form.fields
    response = admin_client.post(
        url,
        {
            "expires_at_0": invitation.expires_at.strftime("%Y-%m-%d"),
            "expires_at_1": invitation.expires_at.strftime("%H:%M:%S"),
            "max_uses": 1,
            "revoked_at_0": "2026-01-01",
            "revoked_at_1": "00:00:00",
        },
    )
    assert response.status_code == 302
    stored = Invitation.objects.get()
    assert stored.revoked_at is not None and stored.token_hash == invitation.token_hash
