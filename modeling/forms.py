"""Forms for retraining, activation and validation rounds (validation only; services do the
work)."""

from __future__ import annotations

from typing import cast

from django import forms
from django.conf import settings

from modeling.ml.backbones import BACKBONES, backbone_availability, backbone_default
from modeling.ml.config import TrainConfig
from modeling.models import ModelVersion
from modeling.services.validation import SEED_MAX

CHOOSE_VERSION = "Choose a model version of this study."
SIZE_MAX = 2**31 - 1  # a positive integer column's largest value

_DEFAULTS = TrainConfig()
REMEMBERED = ("backbone", "weights", "epochs", "folds", "fine_tune")


def _backbone_label(name: str, weights_file: str | None) -> str:
    found = backbone_availability(name, weights_file=weights_file)
    return f"{name} · {'weights here' if found.available else 'no weights here'}"


class RetrainForm(forms.Form):
    """Retrain settings. Every backbone is listed with whether its pretrained weights are on
    this machine; the initial values are the study's last run's (or, for a first run, the
    preferred backbone whose weights are here)."""

    backbone = forms.ChoiceField(
        help_text="“Weights here”: its ImageNet weights are on this machine. For one without, "
        "put the file in torchvision's cache (TORCH_HOME) or set FACET_WEIGHTS_FILE."
    )
    weights = forms.CharField(
        initial="default",
        max_length=60,
        help_text="'default' (the backbone's ImageNet weights), a torchvision weights name, or "
        "'none' (random weights: only for comparison).",
    )
    epochs = forms.IntegerField(min_value=1, max_value=500, initial=_DEFAULTS.epochs)
    folds = forms.IntegerField(min_value=2, max_value=20, initial=_DEFAULTS.folds)
    fine_tune = forms.BooleanField(
        required=False,
        help_text="Also fine-tune the top blocks (cross-validated fold by fold: several "
        "times longer; worth it on a GPU).",
    )

    def __init__(self, *args, last_config: dict | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        weights_file = settings.FACET_WEIGHTS_FILE
        cast(forms.ChoiceField, self.fields["backbone"]).choices = [
            (name, _backbone_label(name, weights_file)) for name in sorted(BACKBONES)
        ]
        self.fields["backbone"].initial = backbone_default(weights_file=weights_file)
        for name in REMEMBERED:
            if last_config and name in last_config:
                self.fields[name].initial = last_config[name]

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


class ValidationRoundForm(forms.Form):
    """Opening a validation round: the version and the sample's size, floor and seed."""

    version = forms.ModelChoiceField(
        label="Model version",
        queryset=ModelVersion.objects.none(),
        error_messages={
            "required": CHOOSE_VERSION,
            "invalid_choice": CHOOSE_VERSION,
        },
    )
    size = forms.IntegerField(label="Faces to sample", min_value=1, max_value=SIZE_MAX)
    min_per_group = forms.IntegerField(
        label="Minimum per subgroup", required=False, min_value=0, max_value=SIZE_MAX
    )
    seed = forms.IntegerField(label="Seed", required=False, min_value=0, max_value=SEED_MAX)

    def __init__(self, *args, study, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["version"]).queryset = study.model_versions.all()

    def errors_line(self) -> str:
        """Every field's errors on one line, for a message above the form."""
        return " ".join(
            f"{self.fields[name].label}: {' '.join(map(str, errors))}"
            for name, errors in self.errors.items()
        )
