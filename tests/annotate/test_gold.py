"""Gold faces: marking, blind mixing into coders' streams, accuracy with a Wilson interval,
correction, auto-pause, and excluding a coder's votes from consensus (and back)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from statsmodels.stats.proportion import proportion_confint

from annotate.assignment import (
    assignment_next,
    assignments_take,
    faces_over_assigned,
    leases_reclaim,
)
from annotate.models import (
    Adjudication,
    Assignment,
    AssignmentStatus,
    Consensus,
    ConsensusStatus,
    Face,
    FaceStatus,
    GoldAnswer,
    GoldFace,
    KnownLabel,
    Membership,
    Vote,
)
from annotate.roles import Role
from annotate.selectors.agreement import agreement_votes
from annotate.selectors.gold import gold_accuracy, gold_block, gold_key, gold_turn
from annotate.selectors.labels import votes_frame
from annotate.services.coding import LeaseLost, VoteRequest, vote_submit, vote_undo
from annotate.services.gold import (
    NO_KNOWN_ANSWER,
    PAUSE_REASON,
    coder_exclude,
    coder_include,
    gold_correct,
    gold_mark,
    gold_mark_imported,
    gold_settings_set,
)
from annotate.services.team import member_pause
from modeling.exports import _votes
from tests.annotate.coding_helpers import answers_for, vote_next
from tests.factories import bare_faces, make_source_image, make_study, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def study():
    return make_study(attributes_asked=[], votes_per_face=3)


def gold_faces_made(study, n: int, *, gender: str = "male") -> list[GoldFace]:
    """n imported faces with a known label, marked gold."""
    faces = bare_faces(study, n, origin=Face.Origin.IMPORTED, coding_status=FaceStatus.COMPLETE)
    KnownLabel.objects.bulk_create(
        [KnownLabel(face=f, source="labels.csv", gender=gender) for f in faces]
    )
    return [gold_mark(face=f, by=None) for f in faces]


def test_a_crop_only_face_is_not_made_gold_where_source_images_would_give_it_away(study):
    """Coders of detected faces get a Source view; a gold face without one would stand out."""
    (crop_only,) = bare_faces(study, 1, origin=Face.Origin.IMPORTED)
    KnownLabel.objects.create(face=crop_only, source="labels.csv", gender="female")
    (detected,) = bare_faces(study, 1, coding_status=FaceStatus.COMPLETE)
    Face.objects.filter(pk=detected.pk).update(source_image=make_source_image(study))
    KnownLabel.objects.create(face=detected, source="labels.csv", gender="male")
    with pytest.raises(ValueError, match="could tell it is a check"):
        gold_mark(face=crop_only, by=None)
    assert gold_mark_imported(study=study, by=None) == 1
    assert list(GoldFace.objects.values_list("face_id", flat=True)) == [detected.pk]


def answer(study, coder, assignment, gender: str):
    return vote_submit(
        study=study,
        coder=coder,
        request=VoteRequest(assignment.pk, answers_for(study, gender), 1.0),
    )


def test_gold_is_marked_from_an_imported_label_or_an_adjudication(client, study):
    imported, decided, unknown = bare_faces(study, 3, coding_status=FaceStatus.COMPLETE)
    KnownLabel.objects.create(face=imported, source="labels.csv", gender="female")
    researcher = make_user(Role.RESEARCHER, study=study)
    Adjudication.objects.create(face=decided, researcher=researcher, label="not_face")
    client.force_login(researcher)
    study_page = client.get(reverse("annotate:study_detail", args=[study.slug])).content.decode()
    assert 'data-testid="gold-link"' in study_page
    page = client.get(reverse("annotate:gold_list", args=[study.slug])).content.decode()
    assert f"#{imported.pk}" in page and f"#{decided.pk}" in page and f"#{unknown.pk}" not in page

    client.post(reverse("annotate:gold_mark", args=[study.slug, decided.pk]))
    client.post(reverse("annotate:gold_mark_imported", args=[study.slug]))
    gold = {g.face_id: (g.gender, g.source) for g in GoldFace.objects.all()}
    assert gold == {
        imported.pk: ("female", GoldFace.Source.KNOWN_LABEL),
        decided.pk: ("not_face", GoldFace.Source.ADJUDICATION),
    }
    response = client.post(reverse("annotate:gold_mark", args=[study.slug, unknown.pk]))
    assert response.status_code == 302 and not GoldFace.objects.filter(face=unknown).exists()
    with pytest.raises(ValueError, match="no imported label"):
        gold_mark(face=unknown, by=researcher)
    assert NO_KNOWN_ANSWER.format(face=unknown.pk).startswith(f"Face {unknown.pk}")
    assert gold_mark_imported(study=study, by=researcher) == 0  # idempotent


def test_stream_mixes_gold_at_the_set_rate_without_touching_vote_slots(study):
    study.gold_rate = 0.25
    study.save()
    gold = gold_faces_made(study, 15)
    bare_faces(study, 40)
    coder = make_user(Role.CODER, study=study)
    served = []
    for _ in range(40):
        assignment, _ = vote_next(study, coder, "male")
        served.append(assignment.gold)
    block = gold_block(0.25)
    assert block == 4 and sum(served) == 10
    key = gold_key(study=study, coder=coder)
    assert served == [gold_turn(index=i, rate=0.25, key=key) for i in range(40)]
    for start in range(0, 40, block):  # exactly one gold face in every block
        assert sum(served[start : start + block]) == 1
    gold_ids = [g.face_id for g in gold]
    assert not Vote.objects.filter(face_id__in=gold_ids).exists()
    assert GoldAnswer.objects.filter(coder=coder).count() == 10
    assert set(Face.objects.filter(pk__in=gold_ids).values_list("slots_taken", flat=True)) == {0}
    assert faces_over_assigned(study=study) == []


def test_a_gold_lease_that_lapses_or_is_released_gives_back_no_slot(study):
    study.gold_rate = 0.5
    study.save()
    (gold,) = gold_faces_made(study, 1)
    bare_faces(study, 4)
    coder = make_user(Role.CODER, study=study)
    leases = assignments_take(study=study, coder=coder, n=2)
    assert [a.gold for a in leases].count(True) == 1
    Assignment.objects.filter(pk__in=[a.pk for a in leases]).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    assert leases_reclaim() == 2
    assert Face.objects.get(pk=gold.face_id).slots_taken == 0
    assert faces_over_assigned(study=study) == []
    # A pause releases the member's live leases, a gold one among them: still no slot moves.
    other = make_user(Role.CODER, study=study)
    held = assignments_take(study=study, coder=other, n=2)
    assert [a.gold for a in held].count(True) == 1
    member_pause(study=study, user=other, reason="test")
    assert set(
        Assignment.objects.filter(pk__in=[a.pk for a in held]).values_list("status", flat=True)
    ) == {AssignmentStatus.RELEASED}
    assert Face.objects.get(pk=gold.face_id).slots_taken == 0
    assert faces_over_assigned(study=study) == []


def test_gold_face_json_looks_like_any_face_and_its_answer_is_no_vote(client, study):
    study.gold_rate = 0.5
    study.save()
    (gold,) = gold_faces_made(study, 1)
    bare_faces(study, 3)
    coder = make_user(Role.CODER, study=study)
    client.force_login(coder)
    items = client.post(reverse("annotate:code_next", args=[study.slug])).json()["items"]
    kinds = {Assignment.objects.get(pk=item["assignment"]).gold: item for item in items}
    assert set(kinds) == {True, False}  # one of the first two faces is gold
    assert kinds[True].keys() == kinds[False].keys()
    assert "gold" not in str(kinds[True]).lower()
    votes_before = Vote.objects.count()
    replies = {}
    for is_gold in (False, True):  # the gold face last, so undo takes its answer back
        item = kinds[is_gold]
        body = {"assignment": item["assignment"], **answers_for(study, "female")}
        response = client.post(
            reverse("annotate:code_submit", args=[study.slug]),
            body,
            content_type="application/json",
        )
        assert response.status_code == 200
        replies[is_gold] = response.json()
    assert replies[True].keys() == replies[False].keys()
    assert replies[True]["progress"]["total"] == 2  # the gold answer counts as a face done
    assert "gold" not in str(replies[True]["items"]).lower()
    assert Vote.objects.count() == votes_before + 1  # only the normal face's answer
    gold_answer = GoldAnswer.objects.get(coder=coder)
    assert gold_answer.gold == gold and gold_answer.gender == "female"
    # A repeat of the same submit is no second answer.
    client.post(
        reverse("annotate:code_submit", args=[study.slug]),
        {"assignment": kinds[True]["assignment"], **answers_for(study, "female")},
        content_type="application/json",
    )
    assert GoldAnswer.objects.filter(coder=coder).count() == 1
    undone = client.post(reverse("annotate:code_undo", args=[study.slug])).json()
    assert undone["item"]["assignment"] == kinds[True]["assignment"]
    assert undone["undone"] == [{"question": "Gender", "answer": "Female"}]
    assert undone["progress"]["total"] == 1


def test_answering_a_gold_face_changes_no_vote_or_consensus(study):
    study.gold_rate = 0.5
    study.save()
    face, *_ = bare_faces(study, 4)
    coders = [make_user(Role.CODER, study=study) for _ in range(3)]
    for coder in coders:  # the first face gets its consensus before it becomes gold
        assignment = Assignment.objects.create(
            face=face,
            coder=coder,
            leased_at=timezone.now(),
            expires_at=timezone.now() + timedelta(minutes=5),
        )
        Face.objects.filter(pk=face.pk).update(slots_taken=face.slots_taken + 1)
        face.refresh_from_db()
        answer(study, coder, assignment, "male")
    consensus = Consensus.objects.get(face=face)
    assert consensus.status == ConsensusStatus.AGREED
    researcher = make_user(Role.RESEARCHER, study=study)
    Adjudication.objects.create(face=face, researcher=researcher, label="male")
    gold = gold_mark(face=face, by=researcher)
    face.refresh_from_db()
    assert face.coding_status == FaceStatus.COMPLETE
    before = (Vote.objects.count(), consensus.updated_at, face.slots_taken, face.coding_status)

    newcomer = make_user(Role.CODER, study=study)
    leases = assignments_take(study=study, coder=newcomer, n=2)
    (gold_lease,) = [a for a in leases if a.gold]
    assert gold_lease.face_id == face.pk
    outcome = answer(study, newcomer, gold_lease, "female")
    assert isinstance(outcome.vote, GoldAnswer) and outcome.vote.gold == gold
    face.refresh_from_db()
    after = (
        Vote.objects.count(),
        Consensus.objects.get(face=face).updated_at,
        face.slots_taken,
        face.coding_status,
    )
    assert after == before
    # Undo works on a gold answer like on a vote: retracted, the lease is live again.
    assert vote_undo(study=study, coder=newcomer).pk == gold_lease.pk
    assert GoldAnswer.objects.get(pk=outcome.vote.pk).retracted_at is not None
    assert Assignment.objects.get(pk=gold_lease.pk).status == AssignmentStatus.LEASED
    assert Vote.objects.count() == before[0]


def _answers(study, coder, golds, genders) -> None:
    """`coder` answers these gold faces through the coding service as their stream serves
    them: gold checks on at the highest rate (one face in each two), the first gold faces by
    id first; the faces between get a vote. With n gold faces to answer the study needs n + 1
    other faces open to the coder: the n-th block may serve its other face first."""
    wanted = {gold.face_id: gender for gold, gender in zip(golds, genders, strict=True)}
    gold_settings_set(
        study=study,
        rate=0.5,
        min_answers=study.gold_min_answers,
        min_accuracy=study.gold_min_accuracy,
    )
    while wanted:
        taken = assignments_take(study=study, coder=coder, n=1)
        if not taken:  # gold faces are served only while real work remains
            raise ValueError(f"{coder} ran out of faces with gold faces {wanted} still to answer")
        lease = taken[0]
        if lease.gold and lease.face_id not in wanted:
            raise ValueError(f"{coder} was served gold face {lease.face_id}, not one of {wanted}")
        answer(study, coder, lease, wanted.pop(lease.face_id) if lease.gold else "male")


def test_accuracy_and_wilson_interval_match_a_direct_computation(study):
    golds = gold_faces_made(study, 7, gender="male")
    bare_faces(study, 8)  # real work left until the last gold face is served
    good, bad = make_user(Role.CODER, study=study), make_user(Role.CODER, study=study)
    _answers(study, good, golds, ["male"] * 5 + ["female"] * 2)
    _answers(study, bad, golds[:4], ["female", "male", "female", "female"])
    vote_undo(study=study, coder=bad)  # the answer on the fourth is retracted: live 1 of 3
    rows = {r["coder_id"]: r for r in gold_accuracy(study=study)}
    for coder, n, correct in ((good, 7, 5), (bad, 3, 1)):
        row = rows[coder.pk]
        assert (row["username"], row["n"], row["correct"]) == (coder.username, n, correct)
        assert row["accuracy"] == pytest.approx(correct / n)
        low, high = proportion_confint(correct, n, alpha=0.05, method="wilson")
        assert (row["low"], row["high"]) == (pytest.approx(low), pytest.approx(high))


def test_correcting_a_gold_answer_recomputes_accuracy(client, study):
    golds = gold_faces_made(study, 4, gender="male")
    bare_faces(study, 5)  # real work left until the last gold face is served
    coder = make_user(Role.CODER, study=study)
    _answers(study, coder, golds, ["male", "male", "female", "female"])
    assert gold_accuracy(study=study)[0]["correct"] == 2
    researcher = make_user(Role.RESEARCHER, study=study)
    client.force_login(researcher)
    url = reverse("annotate:gold_correct", args=[study.slug, golds[2].face_id])
    response = client.post(url, {"gender": "nope"})
    assert response.status_code == 400 and "gender must be one of" in response.content.decode()
    assert GoldFace.objects.get(pk=golds[2].pk).gender == "male"  # bad input changed nothing
    client.post(url, {"gender": "female"})
    corrected = GoldFace.objects.get(pk=golds[2].pk)
    assert corrected.gender == "female" and corrected.corrected_at is not None
    (row,) = gold_accuracy(study=study)
    assert (row["n"], row["correct"]) == (4, 3)
    assert (row["low"], row["high"]) == tuple(
        pytest.approx(v) for v in proportion_confint(3, 4, method="wilson")
    )
    with pytest.raises(ValueError, match="Unknown answer"):
        gold_correct(gold=corrected, gender="robot", by=researcher)


def test_coder_below_threshold_is_paused_after_the_minimum_and_not_before(client, study):
    study.gold_rate = 0.5
    study.gold_min_answers = 4
    study.gold_min_accuracy = 0.7
    study.save()
    gold_faces_made(study, 6, gender="male")
    bare_faces(study, 20)
    coder = make_user(Role.CODER, study=study)
    membership = Membership.objects.get(study=study, user=coder)
    while GoldAnswer.objects.filter(coder=coder).count() < 3:
        vote_next(study, coder, "female")  # every gold answer wrong
        membership.refresh_from_db()
        assert membership.paused_at is None
    while GoldAnswer.objects.filter(coder=coder).count() < 4:
        vote_next(study, coder, "female")
    membership.refresh_from_db()
    assert membership.paused_at is not None and "Gold accuracy 0%" in membership.paused_reason
    assert not Assignment.objects.filter(coder=coder, status=AssignmentStatus.LEASED).exists()

    client.force_login(make_user(Role.RESEARCHER, study=study))
    page = client.get(reverse("annotate:agreement", args=[study.slug])).content.decode()
    assert 'data-testid="paused-coders"' in page and coder.username in page
    assert "Coder accuracy on gold faces" in page


def test_the_study_page_tells_the_researcher_who_was_paused_for_gold_accuracy(client, study):
    study.gold_rate = 0.5
    study.gold_min_answers = 2
    study.gold_min_accuracy = 0.7
    study.save()
    gold_faces_made(study, 3, gender="male")
    bare_faces(study, 10)
    coder, good = make_user(Role.CODER, study=study), make_user(Role.CODER, study=study)
    client.force_login(make_user(Role.RESEARCHER, study=study))
    study_page = reverse("annotate:study_detail", args=[study.slug])
    assert 'data-testid="study-paused-coders"' not in client.get(study_page).content.decode()
    while GoldAnswer.objects.filter(coder=good).count() < 2:
        vote_next(study, good, "male")
    while GoldAnswer.objects.filter(coder=coder).count() < 2:
        vote_next(study, coder, "female")  # every gold answer wrong
    page = client.get(study_page).content.decode()
    notice = page[page.index('data-testid="study-paused-coders"') :]
    notice = notice[: notice.index("</section>")]
    assert coder.username in notice and good.username not in notice
    assert escape(PAUSE_REASON.format(accuracy=0.0, n=2, threshold=0.7)) in notice
    assert reverse("annotate:gold_list", args=[study.slug]) in notice


def test_a_coder_paused_by_a_gold_answer_gets_no_new_face_in_the_reply(client, study):
    study.gold_rate = 0.5
    study.gold_min_answers = 1
    study.save()
    gold_faces_made(study, 2, gender="male")
    bare_faces(study, 6)
    coder = make_user(Role.CODER, study=study)
    client.force_login(coder)
    items = client.post(reverse("annotate:code_next", args=[study.slug])).json()["items"]
    (gold_item,) = [i for i in items if Assignment.objects.get(pk=i["assignment"]).gold]
    reply = client.post(
        reverse("annotate:code_submit", args=[study.slug]),
        {"assignment": gold_item["assignment"], **answers_for(study, "female")},
        content_type="application/json",
    ).json()
    assert reply["ok"] and reply["items"] == []  # paused: nothing new handed out
    assert not Assignment.objects.filter(coder=coder, status=AssignmentStatus.LEASED).exists()
    assert client.post(reverse("annotate:code_next", args=[study.slug])).status_code == 403


def test_a_good_coder_is_not_paused(study):
    study.gold_rate = 0.5
    study.gold_min_answers = 2
    study.save()
    gold_faces_made(study, 4, gender="male")
    bare_faces(study, 10)
    coder = make_user(Role.CODER, study=study)
    while GoldAnswer.objects.filter(coder=coder).count() < 4:
        vote_next(study, coder, "male")
    assert Membership.objects.get(study=study, user=coder).paused_at is None


def test_excluding_a_coder_recomputes_consensus_and_including_restores_it(client, study):
    faces = bare_faces(study, 2)
    bad, good1, good2 = (make_user(Role.CODER, study=study) for _ in range(3))
    for coder, gender in ((bad, "female"), (good1, "female"), (good2, "male")):
        for _ in faces:
            vote_next(study, coder, gender)
    before = {c.face_id: (c.label, c.status, c.counts) for c in Consensus.objects.all()}
    assert {label for label, _, _ in before.values()} == {"female"}
    researcher = make_user(Role.RESEARCHER, study=study)
    client.force_login(researcher)
    page = client.get(reverse("annotate:agreement", args=[study.slug])).content.decode()
    assert page.count("Exclude this coder's votes") == 3  # one per coder in the table
    response = client.post(
        reverse("annotate:gold_exclude", args=[study.slug]), {"coder": bad.pk, "reason": "spam"}
    )
    assert response.status_code == 302
    assert Vote.objects.filter(coder=bad, retracted_at__isnull=True).count() == 2  # kept
    assert not Consensus.objects.exists()  # 2 counted votes of K=3: open again
    for face in Face.objects.filter(pk__in=[f.pk for f in faces]):
        assert (face.coding_status, face.votes_target, face.slots_taken) == (FaceStatus.OPEN, 4, 3)
    assert bad.pk not in set(agreement_votes(study=study).frame["coder"])
    assert agreement_votes(study=study).excluded_left_out == 2
    assert bad.pk not in set(votes_frame(study=study)["coder"])
    page = client.get(reverse("annotate:agreement", args=[study.slug])).content.decode()
    assert 'data-testid="excluded-left-out"' in page and 'data-testid="exclusions"' in page
    exported = _votes(study, pseudonymize=False)
    assert set(exported.loc[exported["coder_id"] == bad.pk, "excluded"]) == {True}
    assert set(exported.loc[exported["coder_id"] != bad.pk, "excluded"]) == {False}
    # The excluded coder's slot stays taken; a new coder can still give the K-th vote.
    newcomer = make_user(Role.CODER, study=study)
    assert assignment_next(study=study, coder=newcomer) is not None

    client.post(reverse("annotate:gold_include", args=[study.slug]), {"coder": bad.pk})
    after = {c.face_id: (c.label, c.status, c.counts) for c in Consensus.objects.all()}
    assert after == before
    assert (
        'data-testid="excluded-left-out"'
        not in client.get(reverse("annotate:agreement", args=[study.slug])).content.decode()
    )


def test_exclusion_is_idempotent_and_refuses_strangers(client, study):
    (face,) = bare_faces(study, 1)
    coder = make_user(Role.CODER, study=study)
    vote_next(study, coder, "male")
    researcher = make_user(Role.RESEARCHER, study=study)
    first = coder_exclude(study=study, coder=coder, by=researcher, reason="x")
    assert coder_exclude(study=study, coder=coder, by=researcher).pk == first.pk
    coder_include(study=study, coder=coder, by=researcher)
    coder_include(study=study, coder=coder, by=researcher)  # nothing to undo: no error
    client.force_login(researcher)
    stranger = make_user(Role.CODER)
    url = reverse("annotate:gold_exclude", args=[study.slug])
    assert client.post(url, {"coder": stranger.pk}).status_code == 404
    assert client.post(url, {"coder": "abc"}).status_code == 400
    client.force_login(coder)
    assert client.post(url, {"coder": coder.pk}).status_code == 403


def test_gold_settings_are_validated(client, study):
    client.force_login(make_user(Role.RESEARCHER, study=study))
    url = reverse("annotate:gold_settings", args=[study.slug])
    client.post(url, {"gold_rate": "0.9", "gold_min_answers": "5", "gold_min_accuracy": "0.8"})
    study.refresh_from_db()
    assert study.gold_rate == 0.0 and study.gold_min_answers == 10  # refused whole
    response = client.post(
        url, {"gold_rate": "0.1", "gold_min_answers": "5", "gold_min_accuracy": "0.8"}, follow=True
    )
    study.refresh_from_db()
    assert (study.gold_rate, study.gold_min_answers, study.gold_min_accuracy) == (0.1, 5, 0.8)
    assert "Gold settings saved" in response.content.decode()


def test_unmarking_a_gold_face_moves_its_holder_on(client, study):
    study.gold_rate = 0.5
    study.save()
    (gold,) = gold_faces_made(study, 1)
    bare_faces(study, 3)
    coder = make_user(Role.CODER, study=study)
    (gold_lease,) = [a for a in assignments_take(study=study, coder=coder, n=2) if a.gold]
    client.force_login(make_user(Role.RESEARCHER, study=study))
    client.post(reverse("annotate:gold_unmark", args=[study.slug, gold.face_id]))
    assert not GoldFace.objects.filter(pk=gold.pk).exists()
    with pytest.raises(LeaseLost):
        answer(study, coder, gold_lease, "male")
    assert Face.objects.get(pk=gold.face_id).slots_taken == 0
    assert (
        client.post(reverse("annotate:gold_unmark", args=[study.slug, gold.face_id])).status_code
        == 404
    )
