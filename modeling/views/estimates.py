"""The estimates page, downloads of every export, and the methods appendix."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from annotate.access import role_required, study_for_researcher
from annotate.params import (
    BadParameter,
    bad_parameters_refused,
    bad_request,
    param_choice,
    param_int,
    param_text,
)
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
APPENDIX_FORMATS = ("html", "md", "json")


def _options(request: HttpRequest) -> EstimateOptions:
    """The estimate options of the query string; BadParameter or EstimatesError for a
    malformed one."""
    get = request.GET
    return EstimateOptions(
        per=param_choice(get, "per", PER_CHOICES, default="face"),
        rank_cutoff=param_int(get, "rank"),
        dedupe=param_text(get, "duplicates", default="once") != "all",
        per_subgroup_rates=param_text(get, "rates") == "subgroup",
        groupings=parse_by(param_text(get, "by")),
    )


def _gallery_link(version_id: int, row: dict, by: tuple[str, ...], rank: int | None) -> str:
    params = {name: row[name] for name in by if row.get(name)}
    params["show"] = "all"
    if rank is not None:
        params["rank"] = rank
    return reverse("modeling:gallery", args=[version_id]) + "?" + urlencode(params)


@role_required(Role.RESEARCHER)
def estimates(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    context: dict = {
        "study": study,
        "per_choices": PER_CHOICES,
        "by_choices": BY_CHOICES,
        "get": request.GET,
    }
    try:
        options = _options(request)
    except (BadParameter, EstimatesError) as exc:
        context["error"] = str(exc)
        return render(request, "modeling/estimates.html", context, status=400)
    try:
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
@bad_parameters_refused
def export(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    get = request.GET
    what = param_text(get, "what")
    format = param_text(get, "format", default="csv")
    version_id = param_int(get, "version")
    version = study.model_versions.filter(pk=version_id).first() if version_id else None
    try:
        frame = export_frame(
            study=study,
            what=what,
            version=version,
            pseudonymize=param_text(get, "pseudonymize") == "1",
            round_id=param_int(get, "round"),
            options=_options(request) if what == "estimates" else None,
        )
        body = export_bytes(frame, format=format)
    except (ExportError, EstimatesError) as exc:
        return bad_request(str(exc))
    response = HttpResponse(body, content_type=CONTENT_TYPES[format])
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-{what}.{format}"'
    return response


@role_required(Role.RESEARCHER)
def exports(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    return render(
        request,
        "modeling/exports.html",
        {
            "study": study,
            "whats": WHAT_CHOICES,
            "formats": FORMAT_CHOICES,
            # The appendix describes a model version: without one its downloads are refused.
            "appendix_missing": None if study.model_versions.exists() else NO_VERSION,
        },
    )


@role_required(Role.RESEARCHER)
@bad_parameters_refused
def appendix(request: HttpRequest, slug: str) -> HttpResponse:
    """The methods appendix: an HTML page; `?format=md` or `?download=1` gives Markdown,
    `?format=json` JSON (downloaded with `download=1`)."""
    study = study_for_researcher(request.user, slug)
    version_id = param_int(request.GET, "version")
    version = (
        study.model_versions.filter(pk=version_id).first()
        if version_id
        else study.model_versions.filter(is_active=True).first()
    ) or study.model_versions.first()
    download = param_text(request.GET, "download") == "1"
    output = param_choice(
        request.GET, "format", APPENDIX_FORMATS, default="md" if download else "html"
    )
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
    if download:
        suffix = "json" if output == "json" else "md"
        response["Content-Disposition"] = (
            f'attachment; filename="{study.slug}-v{version.number}-methods.{suffix}"'
        )
    return response
