"""Forms for retraining and activation (validation only; services do the work)."""

from __future__ import annotations

from django import forms

from modeling.ml.backbones import BACKBONES, DEFAULT_BACKBONE
from modeling.ml.config import TrainConfig

_DEFAULTS = TrainConfig()


class RetrainForm(forms.Form):
    backbone = forms.ChoiceField(
        choices=[(name, name) for name in sorted(BACKBONES)], initial=DEFAULT_BACKBONE
    )
    weights = forms.CharField(
        initial="default",
        max_length=60,
        help_text="'default', a torchvision weights name, or 'none'.",
    )
    epochs = forms.IntegerField(min_value=1, max_value=500, initial=_DEFAULTS.epochs)
    folds = forms.IntegerField(min_value=2, max_value=20, initial=_DEFAULTS.folds)
    fine_tune = forms.BooleanField(required=False, help_text="Also fine-tune the top block.")

    def config(self) -> dict:
        data = self.cleaned_data
        return {
            "backbone": data["backbone"],
            "weights": data["weights"].strip(),
            "epochs": data["epochs"],
            "folds": data["folds"],
            "fine_tune": data["fine_tune"],
        }


class ActivateForm(forms.Form):
    override_reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Only needed to override the subgroup gate; recorded on the version.",
    )
