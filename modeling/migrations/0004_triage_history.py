"""Triage per face (and so per study) with an append-only history.

Forward: every existing Triage row (one per face and version) becomes a "decided" event in
TriageEvent, with its version, author and time; the latest row of each face stays as the
face's current verdict and the older ones are removed (they live on as events).

Backward: the old schema holds one verdict per face and version and has no undo, so it is
rebuilt as, for each face and version, the latest decision made from that version's gallery
and not undone. What the old schema cannot hold is lost: undo events, decisions whose
version was deleted, and decisions that were undone.
"""

from django.db import migrations


def triage_history_copy(apps, schema_editor):
    Triage = apps.get_model("modeling", "Triage")
    TriageEvent = apps.get_model("modeling", "TriageEvent")
    latest: dict[int, int] = {}
    events = []
    for row in Triage.objects.order_by("decided_at", "pk").iterator():
        events.append(
            TriageEvent(
                face_id=row.face_id,
                version_id=row.version_id,
                action="decided",
                decision=row.decision,
                tags=row.tags,
                note=row.note,
                # a label error sent the face back for fresh votes when it was recorded
                votes_reset=row.decision == "label_error",
                actor_id=row.decided_by_id,
                created_at=row.decided_at,
            )
        )
        latest[row.face_id] = row.pk
    TriageEvent.objects.bulk_create(events, batch_size=1000)
    Triage.objects.exclude(pk__in=list(latest.values())).delete()


def triage_history_restore(apps, schema_editor):
    Triage = apps.get_model("modeling", "Triage")
    TriageEvent = apps.get_model("modeling", "TriageEvent")
    rows: dict[tuple[int, int], object] = {}
    for event in (
        TriageEvent.objects.filter(action="decided", undone_by__isnull=True, version__isnull=False)
        .order_by("created_at", "pk")
        .iterator()
    ):
        rows[(event.face_id, event.version_id)] = Triage(
            face_id=event.face_id,
            version_id=event.version_id,
            decision=event.decision,
            tags=event.tags,
            note=event.note,
            decided_by_id=event.actor_id,
            decided_at=event.created_at,
        )
    Triage.objects.all().delete()
    Triage.objects.bulk_create(rows.values(), batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [("modeling", "0003_triage_per_study")]

    operations = [migrations.RunPython(triage_history_copy, triage_history_restore)]
