"""Admins may code, but they see other votes and predictions: their votes are non-blind,
flagged on the row and left out of agreement statistics unless the study allows them.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.models import Consensus, Vote
from annotate.roles import Role, groups_ensure
from annotate.selectors.agreement import agreement_report, agreement_votes
from modeling.appendix import _agreement
from modeling.exports import export_frame
from tests.annotate.coding_helpers import vote_next
from tests.factories import bare_faces, make_study, make_user

pytestmark = pytest.mark.django_db

FACES = 4


def _code_everything(study, coder, gender: str) -> None:
    while vote_next(study, coder, gender) is not None:
        pass


@pytest.fixture
def coded_study():
    """Four faces, each voted by two coders who agree and by an admin who disagrees."""
    study = make_study(votes_per_face=3, attributes_asked=[])
    bare_faces(study, FACES)
    coders = [make_user(Role.CODER, study=study) for _ in range(2)]
    admin = make_user(Role.ADMIN, study=study)
    for coder in coders:
        _code_everything(study, coder, "female")
    _code_everything(study, admin, "male")
    return study, coders, admin


def test_an_admins_vote_is_flagged_non_blind_and_a_coders_is_not(coded_study):
    study, coders, admin = coded_study
    assert Vote.objects.filter(coder=admin).count() == FACES
    assert all(Vote.objects.filter(coder=admin).values_list("non_blind", flat=True))
    assert not Vote.objects.filter(coder__in=coders, non_blind=True).exists()


def test_an_admin_by_group_only_votes_non_blind():
    study = make_study(votes_per_face=1, attributes_asked=[])
    bare_faces(study, 1)
    user = make_user(Role.CODER, study=study)  # may code, and is an admin by group only
    user.groups.add(groups_ensure()[Role.ADMIN])
    _, outcome = vote_next(study, user, "female")
    assert outcome.vote.non_blind and not user.is_superuser


def test_agreement_leaves_out_admin_votes_by_default(coded_study):
    study, _, _ = coded_study
    selected = agreement_votes(study=study)
    assert len(selected.frame) == 2 * FACES
    assert selected.non_blind_left_out == FACES
    report = agreement_report(study=study)
    assert report.percent_agreement == 1.0
    assert report.non_blind_left_out == FACES
    assert _agreement(study)["percent_agreement"] == 1.0
    assert _agreement(study)["non_blind_votes_left_out"] == FACES


def test_agreement_includes_admin_votes_when_the_study_allows_them(coded_study):
    study, _, _ = coded_study
    study.allow_admin_votes = True
    study.save()
    selected = agreement_votes(study=study)
    assert len(selected.frame) == 3 * FACES and selected.non_blind_left_out == 0
    report = agreement_report(study=study)
    assert report.percent_agreement == pytest.approx(1 / 3)
    assert report.non_blind_left_out == 0


def test_admin_votes_still_count_toward_consensus(coded_study):
    study, _, _ = coded_study
    rows = Consensus.objects.filter(face__study=study)
    assert rows.count() == FACES
    assert {(c.n_votes, c.label) for c in rows} == {(3, "female")}


def test_agreement_page_says_how_many_non_blind_votes_were_left_out(client, coded_study):
    study, _, _ = coded_study
    client.force_login(make_user(Role.RESEARCHER, study=study))
    url = reverse("annotate:agreement", args=[study.slug])
    html = client.get(url).content.decode()
    assert 'data-testid="non-blind-left-out"' in html
    assert f"{FACES} non-blind votes" in html
    study.allow_admin_votes = True
    study.save()
    assert 'data-testid="non-blind-left-out"' not in client.get(url).content.decode()


def test_vote_export_carries_the_non_blind_column(coded_study):
    study, _, admin = coded_study
    frame = export_frame(study=study, what="votes")
    flagged = frame.loc[frame["non_blind"].astype(bool), "coder_id"]
    assert set(flagged) == {admin.pk}
    assert len(flagged) == FACES


def test_a_researcher_allows_admin_votes_on_the_settings_page_and_agreement_shows_it_at_once(
    client, settings, coded_study
):
    settings.FACET_SUMMARY_MAX_AGE_S = 3600  # the page shows stored figures
    study, _, _ = coded_study
    client.force_login(make_user(Role.RESEARCHER, study=study))
    agreement = reverse("annotate:agreement", args=[study.slug])
    assert 'data-testid="non-blind-left-out"' in client.get(agreement).content.decode()
    edit = reverse("annotate:study_edit", args=[study.slug])
    assert 'name="allow_admin_votes"' in client.get(edit).content.decode()
    form = {
        "title": study.title,
        "votes_per_face": "3",
        "lease_minutes": "10",
        "aggregation": "majority",
        "min_face_px": "24",
        "escalation_wait_minutes": "60",
        "allow_admin_votes": "on",
    }
    assert client.post(edit, form).status_code == 302
    study.refresh_from_db()
    assert study.allow_admin_votes
    html = client.get(agreement).content.decode()
    assert 'data-testid="non-blind-left-out"' not in html
    assert agreement_report(study=study).non_blind_left_out == 0


def test_allowing_admin_votes_in_the_django_admin_shows_at_once_too(client, settings, coded_study):
    """The Django admin saves the study row itself, past the settings service: the stored
    figures still answer for the setting they were computed under."""
    settings.FACET_SUMMARY_MAX_AGE_S = 3600  # the page shows stored figures
    study, _, _ = coded_study
    client.force_login(make_user(Role.RESEARCHER, study=study))
    agreement = reverse("annotate:agreement", args=[study.slug])
    assert 'data-testid="non-blind-left-out"' in client.get(agreement).content.decode()
    study.allow_admin_votes = True
    study.save()  # as ModelAdmin.save_model does
    assert 'data-testid="non-blind-left-out"' not in client.get(agreement).content.decode()
