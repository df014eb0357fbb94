"""Forms for study set-up and the team page; their rules are the model's validators and the
services' checks (annotate.services.studies, annotate.services.team), not repeated here."""

from __future__ import annotations

from django import forms

from annotate.labels import ATTRIBUTE_QUESTIONS
from annotate.models import MemberRole, Study
from annotate.services.studies import STUDY_SETTINGS

ATTRIBUTE_CHOICES = [(name, question.title) for name, question in ATTRIBUTE_QUESTIONS.items()]


class StudyForm(forms.ModelForm):
    """A study's settings; `slug` only when creating (URLs and commands name the study by it)."""

    attributes_asked = forms.MultipleChoiceField(
        label="Attributes asked",
        choices=ATTRIBUTE_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Besides gender, what coders are asked about each face.",
    )

    class Meta:
        model = Study
        fields = ["slug", *STUDY_SETTINGS]
        labels = {
            "votes_per_face": "Votes per face (K)",
            "lease_minutes": "Lease (minutes)",
            "min_face_px": "Minimum face size (px)",
            "escalation_wait_minutes": "Escalation wait (minutes)",
            "instructions": "Coding instructions",
            "allow_admin_votes": "Allow admin votes in agreement",
        }
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3}),
            "instructions": forms.Textarea(attrs={"rows": 6}),
        }

    def __init__(self, *args, creating: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not creating:
            del self.fields["slug"]

    def clean_attributes_asked(self) -> list[str]:
        # In the questions' own order, whatever order the browser sent them in.
        chosen = set(self.cleaned_data["attributes_asked"])
        return [name for name in ATTRIBUTE_QUESTIONS if name in chosen]

    def settings(self) -> dict[str, object]:
        """The cleaned settings, as the services take them."""
        return {name: self.cleaned_data[name] for name in STUDY_SETTINGS}


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150, label="Username")
    role = forms.ChoiceField(choices=MemberRole.choices, initial=MemberRole.CODER)


class MemberActionForm(forms.Form):
    """Pause, resume or remove one member (the buttons of the team page's rows)."""

    ACTIONS = ("pause", "resume", "remove")

    action = forms.ChoiceField(choices=[(a, a) for a in ACTIONS])
    user = forms.IntegerField(min_value=1)
    reason = forms.CharField(max_length=300, required=False)
