"""Signals the coding flow sends; other apps listen to them, annotate never imports those apps."""

from __future__ import annotations

from django.dispatch import Signal

# Sent after the commit in which a face's coding became final (agreed, adjudicated, or not a
# face). Keyword argument: face_id. Receivers run outside the vote's transaction; an error in
# one is logged and never undoes or fails the vote.
face_coded = Signal()
