"""Signals the coding flow sends; other apps listen to them, annotate never imports those apps."""

from __future__ import annotations

from django.dispatch import Signal

# Sent after the commit in which a face's coding became final (agreed, adjudicated, or not a
# face). Keyword arguments: face_id, and priority (the face's work-queue priority, so a
# receiver that cares only about validation faces needs no query for the others). Receivers
# run outside the vote's transaction; an error in one is logged and never undoes or fails
# the vote.
face_coded = Signal()
