"""The methods appendix for a study and model version, as JSON-ready data and Markdown.

Every figure is read from the stored rows (votes, consensus, the version's metrics and its
newest validation round's stored results), so the appendix repeats the pages' numbers.
"""

from __future__ import annotations

import re
from typing import Any

from django.db.models import Count
from django.utils import timezone

from annotate.aggregation import fleiss_kappa, krippendorff_alpha_nominal, percent_agreement
from annotate.models import Consensus, ConsensusStatus, Study, Vote
from annotate.selectors.agreement import agreement_votes
from modeling import estimates, evaluation
from modeling.models import ModelVersion
from modeling.selectors.validation import validation_round_latest
from modeling.services.validation import _clean, cv_by_subgroup, cv_overall

ESTIMATOR = (
    "Raw share: classify and count (mean of predicted 'female' among the faces of a group, or "
    "the mean over images of each image's share when counted per image), after the rank "
    "cut-off and counting near-duplicate faces once per query. Corrected share: Rogan–Gladen, "
    "p = (q + Sp − 1) / (Se + Sp − 1), with sensitivity Se and specificity Sp for 'female' "
    "measured against the coders' majority in the human-validation round; undefined when "
    "Se + Sp ≤ 1 (the raw share is reported instead); clipped to [0, 1] and flagged when "
    "clipped. 95 % interval: percentile bootstrap ({n_boot} resamples, seeded) resampling the "
    "group's faces (or images) and, independently, the validation faces."
)
NO_VERSION = "This study has no model version yet: train one (Models page) to get an appendix."
NOT_ACTIVE = "No version is active; this appendix describes v{number}, the newest."
NO_ROUND = (
    "v{number} has no validation round with results yet, so there is no human-validation "
    "accuracy: open a round on the Validation page and let the coders finish it."
)
PARTIAL_ROUND = "Round {round} is still being coded: its figures are partial."
NO_CV_ROWS = (
    "v{number} has no cross-validation rows by subgroup (trained before they were stored): "
    "retrain to get the CV column."
)
# Markdown's inline metacharacters, and `|` (ends a GFM table cell); `&<>` become entities.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")
ASSUMPTIONS = [
    "Se and Sp measured on the validation sample hold for the faces being estimated (the same "
    "version, the same kind of images); per-subgroup rates relax this where enough faces exist.",
    "The coders' majority label is the truth the model is measured against.",
    "Faces are classified independently; faces are resampled independently within a group.",
    "Faces marked 'not a face' by coders or triage are excluded from every figure.",
]


def _agreement(study: Study) -> dict[str, Any]:
    """The study's inter-coder agreement on gender, as the agreement page computes it."""
    selected = agreement_votes(study=study)
    votes = selected.frame
    kappa = fleiss_kappa(votes)
    return {
        "percent_agreement": percent_agreement(votes),
        "fleiss_kappa": kappa.kappa,
        "fleiss_kappa_faces": kappa.items,
        "krippendorff_alpha": krippendorff_alpha_nominal(votes),
        "non_blind_votes_left_out": selected.non_blind_left_out,
    }


def _flag_rule(results: dict[str, Any]) -> str:
    flag = results.get("flag")
    if not flag:
        return (
            "computed with an earlier rule (interval or accuracy below the overall); "
            "compute the round again to apply the current test"
        )
    return (
        f"{flag['test']}; p-values adjusted over every tested group of the round by "
        f"{flag['correction_label']}; flagged when the adjusted p ≤ {flag['alpha']} and the "
        f"group's accuracy is at least {flag['gap']:.0%} below the faces outside it"
    )


def _missing(version: ModelVersion, data: dict[str, Any]) -> list[str]:
    """What the appendix cannot report yet, each with what to do about it."""
    missing = []
    if not version.is_active:
        missing.append(NOT_ACTIVE.format(number=version.number))
    if not data["model"]["cv_by_subgroup"]:
        missing.append(NO_CV_ROWS.format(number=version.number))
    human = data["human_validation"]
    if human["round"] is None:
        missing.append(NO_ROUND.format(number=version.number))
    elif human["partial"]:
        missing.append(PARTIAL_ROUND.format(round=human["round"]))
    return missing


def methods_appendix(*, study: Study, version: ModelVersion) -> dict[str, Any]:
    consensus = Consensus.objects.filter(face__study=study)
    coders_per_face = {
        str(row["n_votes"]): row["n"]
        for row in consensus.values("n_votes").annotate(n=Count("face_id")).order_by("n_votes")
    }
    run = version.training_run
    round = validation_round_latest(version=version)
    results = round.results if round is not None else {}
    cv_rows = cv_by_subgroup(version)
    cv = {(r["attribute"], r["group"]): r["accuracy"] for r in cv_rows}
    data = {
        "generated_at": timezone.now().isoformat(),
        "study": {"slug": study.slug, "title": study.title},
        "data": {
            "images": study.images.count(),
            "faces": study.faces.count(),
            "faces_with_consensus": consensus.count(),
            "faces_agreed": consensus.filter(status=ConsensusStatus.AGREED).count(),
            "faces_adjudicated": consensus.filter(status=ConsensusStatus.ADJUDICATED).count(),
            "faces_not_a_face": consensus.filter(status=ConsensusStatus.NOT_FACE).count(),
            "votes": Vote.objects.filter(face__study=study, retracted_at__isnull=True).count(),
        },
        "coding": {
            "coders_per_face_target": study.votes_per_face,
            "coders_per_face": coders_per_face,
            "aggregation": study.aggregation,
            **_agreement(study),
        },
        "model": {
            "version": version.number,
            "backbone": version.backbone,
            "weights": version.weights,
            "threshold": version.threshold,
            "artifact_sha256": version.artifact_sha256,
            "training_config": run.config if run is not None else {},
            "training_faces": len((run.dataset or {}).get("face_ids", [])) if run else None,
            "labels_hash": run.labels_hash if run is not None else "",
            "cv_accuracy": cv_overall(version),
            "cv_by_subgroup": cv_rows,
        },
        "human_validation": {
            "round": round.pk if round is not None else None,
            "size": round.size if round is not None else None,
            "seed": round.seed if round is not None else None,
            "stratification": round.stratification if round is not None else {},
            "faces_used": results.get("n_used"),
            "partial": results.get("partial"),
            "overall": results.get("overall"),
            "by_subgroup": [
                {**row, "cv_accuracy": cv.get((row["attribute"], row["group"]))}
                for row in results.get("by_subgroup", [])
            ],
            "error_rates": results.get("error_rates"),
            "interval": f"Wilson score, 95 % (z = {evaluation.Z95})",
            "min_n": results.get("min_n", evaluation.MIN_N),
            "flag": results.get("flag"),
            "flag_rule": _flag_rule(results),
        },
        "estimator": {
            "description": ESTIMATOR.format(n_boot=estimates.N_BOOT),
            "assumptions": ASSUMPTIONS,
        },
    }
    data = _clean(data)
    data["missing"] = _missing(version, data)
    return data


def _md(value: Any) -> str:
    """`value` as literal Markdown text on one line: HTML's `&`, `<`, `>` as entities,
    Markdown's inline metacharacters (and `|`, which ends a table cell) backslash-escaped, line
    breaks as spaces. For every value that comes from data (titles, names, stored results)."""
    text = " ".join(str(value).splitlines())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _num(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def _p(value) -> str:
    return "—" if value is None else f"{value:.2g}"


def appendix_markdown(data: dict[str, Any]) -> str:
    d, c, m, h = data["data"], data["coding"], data["model"], data["human_validation"]
    lines = [
        f"# Methods appendix: {_md(data['study']['title'])} (model v{m['version']})",
        "",
        *(
            ["## Not available yet", *[f"- {_md(item)}" for item in data["missing"]], ""]
            if data["missing"]
            else []
        ),
        "## Data",
        f"- Images: {d['images']}; faces: {d['faces']}; faces with a consensus: "
        f"{d['faces_with_consensus']} (agreed {d['faces_agreed']}, adjudicated "
        f"{d['faces_adjudicated']}, not a face {d['faces_not_a_face']}); votes: {d['votes']}.",
        f"- Coders per face: target {c['coders_per_face_target']}; observed "
        + (", ".join(f"{_md(k)}: {v} faces" for k, v in c["coders_per_face"].items()) or "—")
        + f". Aggregation: {_md(c['aggregation'])}.",
        f"- Agreement on gender: {_pct(c['percent_agreement'])} of coder pairs agree; "
        f"Fleiss' κ {_num(c['fleiss_kappa'])} (over the {c['fleiss_kappa_faces']} faces with "
        f"the usual number of coders); Krippendorff's α (nominal) {_num(c['krippendorff_alpha'])}"
        + (
            f"; {c['non_blind_votes_left_out']} non-blind (admin) votes left out."
            if c["non_blind_votes_left_out"]
            else "."
        ),
        "",
        "## Model",
        f"- Backbone {_md(m['backbone'])} (weights: {_md(m['weights'])}), decision threshold "
        f"{_md(m['threshold'])}; trained on {m['training_faces'] if m['training_faces'] is not None else '—'} faces.",
        f"- Cross-validation accuracy: {_pct(m['cv_accuracy'])}.",
        "",
        "## Human validation",
    ]
    if h["round"] is None:
        lines.append("- No validation round with results yet.")
    else:
        overall = h["overall"] or {}
        lines += [
            f"- Round {h['round']}: {h['size']} faces sampled (seed {h['seed']}), "
            f"{h['faces_used']} used{' (partial)' if h['partial'] else ''}. {_md(h['interval'])}.",
            f"- Overall accuracy {_pct(overall.get('accuracy'))} "
            f"[{_pct(overall.get('ci_low'))}, {_pct(overall.get('ci_high'))}], n = {overall.get('n')}.",
            f"- Groups with n < {h['min_n']} are marked too few; flag rule: {_md(h['flag_rule'])}.",
            "",
            "| attribute | group | n | accuracy | 95 % CI | adjusted p | CV accuracy | note |",
            "| --- | --- | ---: | ---: | --- | ---: | ---: | --- |",
        ]
        for row in h["by_subgroup"]:
            note = "flagged" if row.get("flagged") else "too few" if row.get("too_few") else ""
            lines.append(
                f"| {_md(row['attribute'])} | {_md(row['group'])} | {row['n']} "
                f"| {_pct(row['accuracy'])} "
                f"| {_pct(row['ci_low'])} – {_pct(row['ci_high'])} "
                f"| {_p(row.get('p_adjusted'))} "
                f"| {_pct(row['cv_accuracy'])} | {note} |"
            )
        rates = h["error_rates"] or {}
        lines.append("")
        lines.append(
            f"- Sensitivity (female) {_pct(rates.get('sensitivity'))}, specificity "
            f"{_pct(rates.get('specificity'))}."
        )
    lines += [
        "",
        "## Estimator",
        data["estimator"]["description"],
        "",
        "Assumptions:",
        *[f"- {a}" for a in data["estimator"]["assumptions"]],
        "",
    ]
    return "\n".join(lines)
