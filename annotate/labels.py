"""The label schema: what coders are asked, the allowed values and their keystrokes.

Values are plain strings so the pure modules (aggregation, evaluation, ml) share them
without importing Django; the TextChoices below are the database's view of the same values.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from django.db import models


class Gender(models.TextChoices):
    FEMALE = "female", "Female"
    MALE = "male", "Male"
    CANT_TELL = "cant_tell", "Can't tell"
    NOT_FACE = "not_face", "Not a face"


class Race(models.TextChoices):
    """Perceived race in FairFace's seven categories."""

    WHITE = "white", "White"
    BLACK = "black", "Black"
    LATINO_HISPANIC = "latino_hispanic", "Latino/Hispanic"
    EAST_ASIAN = "east_asian", "East Asian"
    SOUTHEAST_ASIAN = "southeast_asian", "Southeast Asian"
    INDIAN = "indian", "Indian"
    MIDDLE_EASTERN = "middle_eastern", "Middle Eastern"


class AgeBand(models.TextChoices):
    """FairFace's age bands."""

    A0_2 = "0-2", "0–2"
    A3_9 = "3-9", "3–9"
    A10_19 = "10-19", "10–19"
    A20_29 = "20-29", "20–29"
    A30_39 = "30-39", "30–39"
    A40_49 = "40-49", "40–49"
    A50_59 = "50-59", "50–59"
    A60_69 = "60-69", "60–69"
    A70 = "70+", "70+"


class Glasses(models.TextChoices):
    NONE = "none", "No glasses"
    GLASSES = "glasses", "Glasses"
    SUNGLASSES = "sunglasses", "Sunglasses"


class Quality(models.TextChoices):
    GOOD = "good", "Good"
    BLURRED = "blurred", "Blurred"
    OBSTRUCTED = "obstructed", "Obstructed"
    LOW_RESOLUTION = "low_resolution", "Low resolution"


# The binary target the model learns; "can't tell" and "not a face" are never training labels.
CLASSES: tuple[str, str] = (Gender.MALE.value, Gender.FEMALE.value)
POSITIVE_CLASS = Gender.FEMALE.value


@dataclass(frozen=True)
class Question:
    """One thing a coder is asked about a face; one keystroke per answer."""

    key: str
    title: str
    choices: type[models.TextChoices]
    keys: dict[str, str]  # keystroke -> value

    @cached_property
    def values(self) -> frozenset[str]:
        """The allowed answers (asked on every vote: the enum builds its list anew each time)."""
        return frozenset(self.choices.values)


GENDER_QUESTION = Question(
    "gender",
    "Gender",
    Gender,
    {"f": Gender.FEMALE, "m": Gender.MALE, "c": Gender.CANT_TELL, "n": Gender.NOT_FACE},
)
ATTRIBUTE_QUESTIONS: dict[str, Question] = {
    "race": Question(
        "race", "Perceived race", Race, {str(i + 1): v for i, v in enumerate(Race.values)}
    ),
    "age_band": Question(
        "age_band", "Age band", AgeBand, {str(i + 1): v for i, v in enumerate(AgeBand.values)}
    ),
    "glasses": Question(
        "glasses",
        "Glasses",
        Glasses,
        {"1": Glasses.NONE, "2": Glasses.GLASSES, "3": Glasses.SUNGLASSES},
    ),
    "quality": Question(
        "quality", "Image quality", Quality, {str(i + 1): v for i, v in enumerate(Quality.values)}
    ),
}
# Subgroup attributes analysed by validation and CV, beyond the coded ones.
SUBGROUP_ATTRIBUTES: tuple[str, ...] = ("race", "age_band", "glasses", "quality", "job", "country")


def default_attributes() -> list[str]:
    return list(ATTRIBUTE_QUESTIONS)
