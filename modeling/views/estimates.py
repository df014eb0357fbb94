"""The estimates page, downloads of every export, and the methods appendix."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from annotate.access import role_required, study_for_member
from annotate.roles import Role
from modeling.appendix import NO_VERSION, appendix_markdown, methods_appendix
from modeling.estimates import PER_CHOICES
from modeling.exports import (
    CONTENT_TYPES,
    FORMAT_CHOICES,
    WHAT_CHOICES,
    ExportError,
    export_bytes,
    export_frame,
)
from modeling.selectors.estimates import (
    BY_CHOICES,
    EstimateOptions,
    EstimatesError,
    estimate_tables,
    parse_by,
    version_active,
)

OPTION_KEYS = ("per", "rank", "duplicates", "rates", "by")


def _options(request: HttpRequest) -> EstimateOptions:
    get = request.GET
    per = get.get("per", "face")
    if per not in PER_CHOICES:
        raise EstimatesError(f"per must be one of: {', '.join(PER_CHOICES)}")
    rank = get.get("rank", "").strip()
    if rank and (not rank.isdigit() or int(rank) < 1):
        raise EstimatesError("The rank cut-off must be a whole number of at least 1.")
    return EstimateOptions(
        per=per,
        rank_cutoff=int(rank) if rank else None,
        dedupe=get.get("duplicates", "once") != "all",
        per_subgroup_rates=get.get("rates") == "subgroup",
        groupings=parse_by(get.get("by", "")),
    )


def _gallery_link(version_id: int, row: dict, by: tuple[str, ...], rank: int | None) -> str:
    params = {name: row[name] for name in by if row.get(name)}
    params["show"] = "all"
    if rank is not None:
        params["rank"] = rank
    return reverse("modeling:gallery", args=[version_id]) + "?" + urlencode(params)


@role_required(Role.RESEARCHER)
def estimates(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_member(request.user, slug)
    context: dict = {
        "study": study,
        "per_choices": PER_CHOICES,
        "by_choices": BY_CHOICES,
        "get": request.GET,
    }
    try:
        options = _options(request)
        version = version_active(study=study)
        result = estimate_tables(version=version, options=options)
    except EstimatesError as exc:
        context["error"] = str(exc)
        return render(request, "modeling/estimates.html", context)
    tables = []
    for name, frame in result.tables.items():
        by = options.groupings[name]
        rows = frame.to_dict(orient="records")
        for row in rows:
            row["key"] = " × ".join(str(row[c]) or "(none)" for c in by)
            row["faces_url"] = _gallery_link(version.pk, row, by, options.rank_cutoff)
        tables.append({"name": name, "rows": rows})
    kept = {k: request.GET[k] for k in OPTION_KEYS if request.GET.get(k)}
    context.update(
        version=version,
        basis=result.basis,
        options=options,
        tables=tables,
        download_csv=reverse("modeling:export", args=[study.slug])
        + "?"
        + urlencode({**kept, "what": "estimates", "format": "csv"}),
        download_parquet=reverse("modeling:export", args=[study.slug])
        + "?"
        + urlencode({**kept, "what": "estimates", "format": "parquet"}),
    )
    return render(request, "modeling/estimates.html", context)


@role_required(Role.RESEARCHER)
@require_http_methods(["GET"])
def export(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_member(request.user, slug)
    what = request.GET.get("what", "")
    format = request.GET.get("format", "csv")
    version = None
    if request.GET.get("version", "").isdigit():
        version = study.model_versions.filter(pk=int(request.GET["version"])).first()
    round_id = request.GET.get("round", "")
    try:
        frame = export_frame(
            study=study,
            what=what,
            version=version,
            pseudonymize=request.GET.get("pseudonymize") == "1",
            round_id=int(round_id) if round_id.isdigit() else None,
            options=_options(request) if what == "estimates" else None,
        )
        body = export_bytes(frame, format=format)
    except (ExportError, EstimatesError) as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    response = HttpResponse(body, content_type=CONTENT_TYPES[format])
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-{what}.{format}"'
    return response


@role_required(Role.RESEARCHER)
def exports(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_member(request.user, slug)
    return render(
        request,
        "modeling/exports.html",
        {"study": study, "whats": WHAT_CHOICES, "formats": FORMAT_CHOICES},
    )


@role_required(Role.RESEARCHER)
def appendix(request: HttpRequest, slug: str) -> HttpResponse:
    """The methods appendix: an HTML page; `?format=md` or `?download=1` gives Markdown,
    `?format=json` JSON (downloaded with `download=1`)."""
    study = study_for_member(request.user, slug)
    version_id = request.GET.get("version", "")
    version = (
        study.model_versions.filter(pk=int(version_id)).first()
        if version_id.isdigit()
        else study.model_versions.filter(is_active=True).first()
    ) or study.model_versions.first()
    output = request.GET.get("format") or ("md" if request.GET.get("download") == "1" else "html")
    if version is None:
        if output == "html":
            return render(
                request, "modeling/appendix.html", {"study": study, "missing": [NO_VERSION]}
            )
        return HttpResponse(NO_VERSION, status=404, content_type="text/plain; charset=utf-8")
    data = methods_appendix(study=study, version=version)
    if output == "html":
        return render(
            request,
            "modeling/appendix.html",
            {"study": study, "version": version, "data": data, "missing": data["missing"]},
        )
    if output == "json":
        response = HttpResponse(
            json.dumps(data, indent=2, ensure_ascii=False), content_type="application/json"
        )
    else:
        response = HttpResponse(
            appendix_markdown(data), content_type="text/markdown; charset=utf-8"
        )
    if request.GET.get("download") == "1":
        suffix = "json" if output == "json" else "md"
        response["Content-Disposition"] = (
            f'attachment; filename="{study.slug}-v{version.number}-methods.{suffix}"'
        )
    return response
