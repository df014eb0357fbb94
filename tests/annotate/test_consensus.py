"""Consensus at the K-th vote: majority, escalation, adjudication, not-a-face, undo."""

from __future__ import annotations

import pytest

from annotate.consensus import NOT_WAITING, face_adjudicate
from annotate.models import Adjudication, Consensus, ConsensusStatus, Face, FaceStatus, Vote
from annotate.roles import Role
from annotate.services.coding import vote_undo
from tests.annotate.coding_helpers import vote_next
from tests.factories import bare_faces, make_study, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def study():
    return make_study(attributes_asked=["race", "glasses"])


def label_one_face(study, genders):
    (face,) = bare_faces(study, 1)
    people = [make_user(Role.CODER, study=study) for _ in genders]
    for coder, gender in zip(people, genders, strict=True):
        assert vote_next(study, coder, gender) is not None
    face.refresh_from_db()
    return face, people


def test_consensus_is_written_with_the_kth_vote(study):
    (face,) = bare_faces(study, 1)
    people = [make_user(Role.CODER, study=study) for _ in range(3)]
    vote_next(study, people[0], "female")
    vote_next(study, people[1], "male")
    assert not Consensus.objects.filter(face=face).exists()
    vote_next(study, people[2], "female")
    consensus = Consensus.objects.get(face=face)
    assert consensus.status == ConsensusStatus.AGREED and consensus.label == "female"
    assert consensus.counts == {"female": 2, "male": 1} and consensus.n_votes == 3
    assert consensus.agreement == pytest.approx(2 / 3)
    assert consensus.attributes == {"race": "white", "glasses": "none"}
    face.refresh_from_db()
    assert face.coding_status == FaceStatus.COMPLETE


def test_a_three_way_split_asks_one_extra_coder_then_a_researcher(study):
    fourth = make_user(Role.CODER, study=study)  # without one, the split goes to a researcher
    face, _ = label_one_face(study, ["female", "male", "cant_tell"])
    assert face.coding_status == FaceStatus.OPEN and face.votes_target == 4
    assert face.consensus.status == ConsensusStatus.ESCALATED and face.consensus.label == ""
    vote_next(study, fourth, "male")
    face.refresh_from_db()
    assert face.coding_status == FaceStatus.COMPLETE and face.consensus.label == "male"


def test_still_split_after_the_extra_coder_goes_to_adjudication(study):
    face, _ = label_one_face(study, ["female", "male", "cant_tell", "not_face"])
    assert face.coding_status == FaceStatus.ADJUDICATION
    assert face.consensus.status == ConsensusStatus.ADJUDICATION
    researcher = make_user(Role.RESEARCHER, study=study)
    face_adjudicate(face=face, researcher=researcher, label="female", reason="clear in source")
    face.refresh_from_db()
    assert face.coding_status == FaceStatus.COMPLETE
    assert face.consensus.status == ConsensusStatus.ADJUDICATED and face.consensus.label == "female"
    assert Adjudication.objects.filter(face=face).count() == 1
    assert Vote.objects.filter(face=face, retracted_at__isnull=True).count() == 4  # untouched
    with pytest.raises(ValueError, match=NOT_WAITING):
        face_adjudicate(face=face, researcher=researcher, label="male")


def test_not_a_face_majority_excludes_the_face(study):
    face, _ = label_one_face(study, ["not_face", "not_face", "female"])
    assert face.coding_status == FaceStatus.EXCLUDED
    assert face.consensus.status == ConsensusStatus.NOT_FACE


def test_undo_of_the_kth_vote_reopens_the_face_and_keeps_the_vote_row(study):
    face, people = label_one_face(study, ["female", "female", "male"])
    assert face.coding_status == FaceStatus.COMPLETE
    assignment = vote_undo(study=study, coder=people[2])
    face.refresh_from_db()
    assert (
        face.coding_status == FaceStatus.OPEN and not Consensus.objects.filter(face=face).exists()
    )
    assert face.slots_taken == 3  # the undoing coder keeps the slot
    assert Vote.objects.filter(face=face).count() == 3
    assert assignment.status == "leased"
    vote_next(study, people[2], "female")
    face.refresh_from_db()
    assert face.consensus.counts == {"female": 3}
    assert Face.objects.get(pk=face.pk).coding_status == FaceStatus.COMPLETE


def test_a_study_s_consensus_rows_and_waiting_faces_are_read_as_its_own(study):
    from annotate.selectors.agreement import recent_consensus
    from annotate.selectors.waiting import faces_waiting
    from tests.factories import faces_vote

    other = make_study(attributes_asked=["race", "glasses"])
    split = [{"gender": "female"}, {"gender": "male"}, {"gender": "cant_tell"}]
    mine, theirs = bare_faces(study, 2), bare_faces(other, 3)
    faces_vote({mine[0].pk: [{"gender": "female"}] * 3, mine[1].pk: split})
    faces_vote({face.pk: split for face in theirs})  # newer rows, in another study

    # The writer copies each face's study onto its row; the reads keep to their study.
    assert {c.face_id: c.study_id for c in Consensus.objects.all()} == {
        **{face.pk: study.pk for face in mine},
        **{face.pk: other.pk for face in theirs},
    }
    assert {c.face_id for c in recent_consensus(study=study)} == {face.pk for face in mine}
    waiting = faces_waiting(study=study)
    assert [w.face.pk for w in waiting.faces] == [mine[1].pk] and waiting.total == 1
