"""Synthetic face crops with known gender and subgroup attributes (pure: Pillow + stdlib).

Drawn faces carry three gender cues — hair length, lip colour, beard — each scaled by a cue
strength. The planted weakness: children (age band 3-9) get cue strength near zero, and
their faint cue points to either gender at random, so no model trained on this data does
much better than chance on `age_band == "3-9"` while other groups stay well above it
(adults follow the stereotype 92 % of the time). Everything is deterministic given the seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from PIL import Image, ImageDraw, ImageFilter

WEAK_SUBGROUP = ("age_band", "3-9")
TILE = 128

JOBS: dict[str, float] = {  # job -> share of women pictured (demo truth)
    "nurse": 0.85,
    "teacher": 0.7,
    "cleaner": 0.6,
    "doctor": 0.45,
    "engineer": 0.2,
    "ceo": 0.15,
}
COUNTRIES: dict[str, tuple[str, float]] = {  # country -> (language, shift in female share)
    "US": ("en", 0.0),
    "DE": ("de", -0.05),
    "IN": ("hi", -0.1),
    "BR": ("pt", 0.05),
}
QUERY_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "nurse": "nurse",
        "teacher": "teacher",
        "cleaner": "cleaner",
        "doctor": "doctor",
        "engineer": "engineer",
        "ceo": "ceo",
    },
    "de": {
        "nurse": "pflegekraft",
        "teacher": "lehrkraft",
        "cleaner": "reinigungskraft",
        "doctor": "arzt",
        "engineer": "ingenieur",
        "ceo": "geschäftsführer",
    },
    "hi": {
        "nurse": "नर्स",
        "teacher": "शिक्षक",
        "cleaner": "सफाईकर्मी",
        "doctor": "डॉक्टर",
        "engineer": "इंजीनियर",
        "ceo": "सीईओ",
    },
    "pt": {
        "nurse": "enfermeira",
        "teacher": "professor",
        "cleaner": "faxineiro",
        "doctor": "médico",
        "engineer": "engenheiro",
        "ceo": "ceo",
    },
}
RACE_SKIN: dict[str, tuple[str, ...]] = {
    "white": ("light", "light", "medium"),
    "east_asian": ("light", "medium"),
    "southeast_asian": ("medium", "medium", "dark"),
    "latino_hispanic": ("light", "medium", "medium"),
    "middle_eastern": ("light", "medium"),
    "indian": ("medium", "dark", "dark"),
    "black": ("dark", "dark", "medium"),
}
SKIN_RGB = {"light": (236, 201, 172), "medium": (196, 143, 104), "dark": (112, 74, 52)}
HAIR_RGB = [(25, 20, 18), (70, 45, 25), (140, 100, 55), (200, 170, 110)]
AGE_WEIGHTS = {
    "3-9": 0.12,
    "20-29": 0.22,
    "30-39": 0.24,
    "40-49": 0.2,
    "50-59": 0.14,
    "60-69": 0.08,
}
QUALITY_WEIGHTS = {"good": 0.75, "blurred": 0.12, "low_resolution": 0.08, "obstructed": 0.05}
GLASSES_WEIGHTS = {"none": 0.75, "glasses": 0.2, "sunglasses": 0.05}


@dataclass(frozen=True)
class SyntheticFace:
    index: int
    gender: str
    race: str
    skin_tone: str
    age_band: str
    glasses: str
    quality: str
    job: str
    country: str
    language: str
    query: str
    rank: int
    cue_strength: float

    def truth(self) -> dict[str, Any]:
        return asdict(self)


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def face_specs(n: int, *, seed: int) -> Iterator[SyntheticFace]:
    """The attributes of n faces, spread evenly over jobs × countries, deterministic by seed."""
    rng = random.Random(seed)
    cells = [(job, country) for job in JOBS for country in COUNTRIES]
    ranks: dict[tuple[str, str], int] = {}
    for i in range(n):
        job, country = cells[i % len(cells)]
        language, shift = COUNTRIES[country]
        share = min(max(JOBS[job] + shift, 0.02), 0.98)
        gender = "female" if rng.random() < share else "male"
        race = rng.choice(list(RACE_SKIN))
        age = _pick(rng, AGE_WEIGHTS)
        weak = age == WEAK_SUBGROUP[1]
        ranks[(job, country)] = ranks.get((job, country), 0) + 1
        yield SyntheticFace(
            index=i,
            gender=gender,
            race=race,
            skin_tone=rng.choice(RACE_SKIN[race]),
            age_band=age,
            glasses=_pick(rng, GLASSES_WEIGHTS),
            quality=_pick(rng, QUALITY_WEIGHTS),
            job=job,
            country=country,
            language=language,
            query=QUERY_WORDS[language][job],
            rank=ranks[(job, country)],
            cue_strength=rng.uniform(0.0, 0.2) if weak else rng.uniform(0.65, 1.0),
        )


def _jitter(rgb: tuple[int, int, int], rng: random.Random, amount: int) -> tuple[int, int, int]:
    red, green, blue = (max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)
    return red, green, blue


def draw_face(spec: SyntheticFace, *, seed: int, size: int = TILE) -> Image.Image:
    """Draw one face tile (RGB, size × size) for `spec`; same spec and seed, same pixels."""
    rng = random.Random(seed * 1_000_003 + spec.index)
    img = Image.new("RGB", (size, size), _jitter((150, 170, 190), rng, 60))
    d = ImageDraw.Draw(img)
    s = size / 128
    child = spec.age_band == "3-9"
    female = spec.gender == "female"
    cue = spec.cue_strength
    # An honest share of adults do not follow the stereotype: the cue flips for them. A
    # child's faint cue points either way whatever the gender (the planted weakness).
    flip = 0.5 if child else 0.08
    female_look = not female if rng.random() < flip else female
    signed = cue if female_look else -cue  # +1 reads female, -1 reads male, 0 ambiguous
    hair = rng.choice(HAIR_RGB[:2] if child else HAIR_RGB)
    if spec.age_band in {"50-59", "60-69"} and rng.random() < 0.6:
        hair = _jitter((170, 170, 170), rng, 20)
    skin = _jitter(SKIN_RGB[spec.skin_tone], rng, 12)
    head_w, head_h = (44 if child else 50) * s, (52 if child else 62) * s
    cx, cy = size / 2 + rng.uniform(-4, 4) * s, size * 0.45 + rng.uniform(-3, 3) * s
    # Shoulders and clothing (no gender information in the colour).
    d.ellipse(
        [cx - 56 * s, size * 0.82, cx + 56 * s, size * 1.4], fill=_jitter((90, 90, 120), rng, 80)
    )
    # Hair: length below the chin grows with the female cue.
    hair_len = max(0.0, 0.5 + 0.5 * signed) * 48 * s
    d.rectangle(
        [cx - head_w / 2 - 8 * s, cy - 10 * s, cx + head_w / 2 + 8 * s, cy + 10 * s + hair_len],
        fill=hair,
    )
    d.ellipse(
        [cx - head_w / 2 - 6 * s, cy - head_h / 2 - 8 * s, cx + head_w / 2 + 6 * s, cy + 8 * s],
        fill=hair,
    )
    d.ellipse([cx - head_w / 2, cy - head_h / 2, cx + head_w / 2, cy + head_h / 2], fill=skin)
    # Beard shadow for the male cue (adults only).
    if signed < 0 and not child:
        # Stubble blends toward one dark colour, so it reads on every skin tone alike.
        strength = 0.7 * -signed
        shade = tuple(int(c * (1 - strength) + 30 * strength) for c in skin)
        d.chord(
            [cx - head_w / 2, cy - head_h / 6, cx + head_w / 2, cy + head_h / 2],
            10,
            170,
            fill=shade,
        )
    eye_y = cy - head_h * 0.08
    for ex in (cx - head_w * 0.2, cx + head_w * 0.2):
        d.ellipse([ex - 4 * s, eye_y - 3 * s, ex + 4 * s, eye_y + 3 * s], fill=(250, 250, 250))
        d.ellipse([ex - 2 * s, eye_y - 2 * s, ex + 2 * s, eye_y + 2 * s], fill=(30, 30, 40))
        if spec.glasses != "none":
            box = [ex - 9 * s, eye_y - 7 * s, ex + 9 * s, eye_y + 7 * s]
            if spec.glasses == "sunglasses":
                d.ellipse(box, fill=(15, 15, 20))
            else:
                d.ellipse(box, outline=(20, 20, 20), width=max(1, int(2 * s)))
    # Lips: redder with the female cue.
    red = max(0.0, signed)
    lip = tuple(
        int(a * (1 - red) + b * red) for a, b in zip((150, 90, 80), (200, 30, 60), strict=True)
    )
    d.ellipse([cx - 9 * s, cy + head_h * 0.22, cx + 9 * s, cy + head_h * 0.22 + 6 * s], fill=lip)
    return _degrade(img, spec.quality, rng)


def _degrade(img: Image.Image, quality: str, rng: random.Random) -> Image.Image:
    if quality == "blurred":
        return img.filter(ImageFilter.GaussianBlur(radius=2))
    if quality == "low_resolution":
        small = img.resize((24, 24), Image.Resampling.BILINEAR)
        return small.resize(img.size, Image.Resampling.NEAREST)
    if quality == "obstructed":
        # Something across the upper face (a hand, a sign, a hat brim): the eyes go, the
        # gender cues below them stay, so obstruction is not a second planted weakness.
        d = ImageDraw.Draw(img)
        w, h = img.size
        x = rng.randint(0, w // 4)
        top = h * rng.uniform(0.18, 0.26)
        d.rectangle(
            [x, top, x + w * 3 // 4, top + h * 0.16], fill=_jitter((120, 120, 120), rng, 60)
        )
    return img


def draw_scene(
    tiles: list[Image.Image], *, seed: int
) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """Place face tiles side by side on a 'search result' image; returns it and each face's box.

    The box is the face itself (the tile's centre); the tile around it is the crop's margin.
    """
    rng = random.Random(seed)
    pad = 16
    width = pad + len(tiles) * (TILE + pad)
    scene = Image.new("RGB", (width, TILE + 2 * pad + 24), _jitter((220, 220, 210), rng, 30))
    boxes = []
    for i, tile in enumerate(tiles):
        x, y = pad + i * (TILE + pad), pad
        scene.paste(tile, (x, y))
        boxes.append((x + TILE // 4, y + TILE // 8, TILE // 2, TILE * 5 // 8))
    return scene, boxes
