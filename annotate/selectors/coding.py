"""Reads for the coding flow: what a coder may see of a face, and its progress.

Blinding: `assignment_payload` is the ONLY description of a face sent to a coder. It names
the lease, the crop and (on request) the source image with the box, and nothing about other
coders' votes, the consensus, or any model's prediction.
"""

from __future__ import annotations

from django.urls import reverse

from annotate.models import Assignment, FaceStatus, Study, Vote

PAYLOAD_KEYS = ("assignment", "crop", "source", "expires_at")


def assignment_payload(*, study: Study, assignment: Assignment) -> dict:
    face = assignment.face
    has_source = face.source_image_id is not None and face.box_x is not None
    return {
        "assignment": assignment.pk,
        "crop": reverse("annotate:face_crop", args=[face.pk]) if face.crop else "",
        "source": (
            reverse("annotate:code_source", args=[study.slug, assignment.pk])
            if has_source
            else None
        ),
        "expires_at": assignment.expires_at.isoformat(),
    }


def coder_votes_count(*, study: Study, coder) -> int:
    return Vote.objects.filter(face__study=study, coder=coder, retracted_at__isnull=True).count()


OPEN_COUNT_CAP = 1000


def faces_open_count(*, study: Study) -> str:
    """Open faces in the study for the coder's progress line, counted up to a cap ("1000+"),
    so the cost does not grow with the study."""
    n = study.faces.filter(coding_status=FaceStatus.OPEN)[: OPEN_COUNT_CAP + 1].count()
    return f"{OPEN_COUNT_CAP}+" if n > OPEN_COUNT_CAP else str(n)
