"""The researcher's agreement page and adjudication queue."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.models import Adjudication, Face, FaceStatus, ImportBatch
from annotate.roles import Role
from annotate.selectors.agreement import agreement_report, agreement_votes
from annotate.services.simulation import coders_simulate
from tests.annotate.coding_helpers import vote_next
from tests.factories import bare_faces, make_source_image, make_study, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def study():
    return make_study(attributes_asked=["glasses"])


def test_agreement_page_shows_figures_coders_chart_and_confusion(client, study):
    bare_faces(study, 12)
    coders_simulate(study=study, coders=4, accuracy=0.8, seed=5)
    researcher = make_user(Role.RESEARCHER, study=study)
    client.force_login(researcher)
    url = reverse("annotate:agreement", args=[study.slug])
    html = client.get(url).content.decode()
    for text in ("Percent agreement", "Fleiss", "Krippendorff", "<svg", "sim-coder-1"):
        assert text in html
    report = agreement_report(study=study)
    coder_id = report.coders[0].coder_id
    html = client.get(f"{url}?coder={coder_id}&question=glasses").content.decode()
    assert 'data-testid="confusion"' in html
    for bad in ("batch=abc", "coder=-1", "question=nope"):  # refused, not silently ignored
        response = client.get(f"{url}?{bad}")
        assert response.status_code == 400 and bad.split("=")[0] in response.content.decode()


def test_kappa_without_a_value_reads_as_a_dash_with_the_reason_not_nan(client, study):
    bare_faces(study, 3)
    coder = make_user(Role.CODER, study=study)
    while vote_next(study, coder):  # one vote per face so far: no κ can be computed
        pass
    client.force_login(make_user(Role.RESEARCHER, study=study))
    html = client.get(reverse("annotate:agreement", args=[study.slug])).content.decode()
    kappa = html.split('data-testid="kappa">')[1].split("</dd>")[0]
    assert "nan" not in kappa.lower()
    assert kappa.startswith("–") and "not defined on 3 faces with 1 vote each" in kappa


def test_agreement_can_be_limited_to_one_import_batch(study):
    batch = ImportBatch.objects.create(study=study)
    image = make_source_image(study, batch=batch)
    in_batch = bare_faces(study, 2, source_image=image)
    bare_faces(study, 3)
    coders_simulate(study=study, coders=3, accuracy=1.0)
    frame = agreement_votes(study=study, batch_id=batch.pk).frame
    assert set(frame["item"]) == {f.pk for f in in_batch} and len(frame) == 6
    assert agreement_report(study=study, batch_id=batch.pk).n_items == 2


def test_researchers_of_other_studies_are_refused(client, study):
    client.force_login(make_user(Role.RESEARCHER))
    assert client.get(reverse("annotate:agreement", args=[study.slug])).status_code == 403
    assert client.get(reverse("annotate:adjudication", args=[study.slug])).status_code == 403


def test_adjudication_is_recorded_beside_the_votes(client, study):
    (face,) = bare_faces(study, 1)
    coders = [make_user(Role.CODER, study=study) for _ in range(4)]  # one to take the split
    for coder, gender in zip(coders, ("female", "male", "cant_tell", "not_face"), strict=True):
        vote_next(study, coder, gender)
    researcher = make_user(Role.RESEARCHER, study=study)
    client.force_login(researcher)
    html = client.get(reverse("annotate:adjudication", args=[study.slug])).content.decode()
    assert f"#{face.pk}" in html
    url = reverse("annotate:adjudicate", args=[study.slug, face.pk])
    assert client.post(url, {"label": "purple"}).status_code == 302
    assert not Adjudication.objects.exists()
    client.post(url, {"label": "male", "reason": "source shows a man"})
    assert Adjudication.objects.get().researcher == researcher
    assert Face.objects.get().coding_status == FaceStatus.COMPLETE
    assert face.votes.filter(retracted_at__isnull=True).count() == 4


def test_study_page_links_to_agreement_and_adjudication(client, study):
    client.force_login(make_user(Role.RESEARCHER, study=study))
    html = client.get(reverse("annotate:study_detail", args=[study.slug])).content.decode()
    assert reverse("annotate:agreement", args=[study.slug]) in html
    assert reverse("annotate:adjudication", args=[study.slug]) in html
