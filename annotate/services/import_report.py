"""What an import reports: the counts and lists of an ImportReport, the messages both kinds of
import (images, labeled faces) write into it, and how chunk reports merge and print."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

REPORT_LIST_LIMIT = 2000
BATCH_MANIFEST_UNUSABLE = "The manifest cannot be used, so nothing was imported: {reason}"
BATCH_LABELS_UNUSABLE = "The labels file cannot be used, so nothing was imported: {reason}"
BATCH_UPLOAD_UNUSABLE = "The upload cannot be used, so nothing was imported: {reason}"
BATCH_CRASHED = "The import stopped: {reason}. Images stored before this point are kept."
REJECT_DUPLICATE = "duplicate: same content as {name!r} already in this study"
REJECT_STORE = "could not be stored: {detail}"


@dataclass
class ImportReport:
    """What an import did; stored as ImportBatch.report and printed by the commands."""

    imported: int = 0
    faces_found: int = 0
    faces_too_small: int = 0
    near_duplicate_faces: int = 0
    images_without_faces: int = 0
    duplicates: list[dict] = field(default_factory=list)
    rejected_files: list[dict] = field(default_factory=list)
    rejected_rows: list[dict] = field(default_factory=list)
    files_without_manifest_row: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    detector: str = ""
    truncated: int = 0
    duplicates_skipped: int = 0
    rejected: int = 0
    rows_rejected: int = 0
    rows_warned: int = 0
    row_warnings: list[dict] = field(default_factory=list)  # row kept, a value left empty
    label_conflicts: list[dict] = field(default_factory=list)  # same picture, other labels
    rows_file: str = "manifest"  # what the rows come from, as the report names it
    _warned_lines: set[int] = field(default_factory=set, repr=False)

    def _append(self, items: list, item) -> None:
        if len(items) < REPORT_LIST_LIMIT:
            items.append(item)
        else:
            self.truncated += 1

    def duplicate(self, name: str, reason: str) -> None:
        self.duplicates_skipped += 1
        self._append(self.duplicates, {"file": name, "reason": reason})

    def reject_file(self, name: str, reason: str) -> None:
        self.rejected += 1
        self._append(self.rejected_files, {"file": name, "reason": reason})

    def reject_row(self, problem: dict) -> None:
        self.rows_rejected += 1
        self._append(self.rejected_rows, problem)

    def warn_row(self, problem: dict) -> None:
        """One warning about a kept row; a row with several counts once in rows_warned."""
        self.rows_warned += problem["line"] not in self._warned_lines
        self._warned_lines.add(problem["line"])
        self._append(self.row_warnings, problem)

    def label_conflict(self, conflict: dict) -> None:
        self._append(self.label_conflicts, conflict)

    def file_without_row(self, name: str) -> None:
        self._append(self.files_without_manifest_row, name)

    def as_dict(self) -> dict:
        return {
            "imported": self.imported,
            "duplicates_skipped": self.duplicates_skipped,
            "rejected": self.rejected,
            "rows_rejected": self.rows_rejected,
            "rows_warned": self.rows_warned,
            "faces_found": self.faces_found,
            "faces_too_small": self.faces_too_small,
            "near_duplicate_faces": self.near_duplicate_faces,
            "images_without_faces": self.images_without_faces,
            "duplicates": self.duplicates,
            "rejected_files": self.rejected_files,
            "rejected_rows": self.rejected_rows,
            "row_warnings": self.row_warnings,
            "label_conflicts": self.label_conflicts,
            "files_without_manifest_row": self.files_without_manifest_row,
            "notes": self.notes,
            "detector": self.detector,
            "rows_file": self.rows_file,
            "entries_left_out_of_lists": self.truncated,
        }


COUNTS = (
    "imported",
    "duplicates_skipped",
    "rejected",
    "rows_rejected",
    "rows_warned",
    "faces_found",
    "faces_too_small",
    "near_duplicate_faces",
    "images_without_faces",
    "entries_left_out_of_lists",
)
LISTS = (
    "duplicates",
    "rejected_files",
    "rejected_rows",
    "row_warnings",
    "label_conflicts",
    "files_without_manifest_row",
    "notes",
)


def report_merge(total: dict, part: dict) -> dict:
    """`total` plus one chunk's report: counts add up, lists are joined (up to the limit)."""
    merged = dict(total)
    for key in COUNTS:
        merged[key] = total.get(key, 0) + part.get(key, 0)
    for key in LISTS:
        joined = list(total.get(key, [])) + list(part.get(key, []))
        merged["entries_left_out_of_lists"] += max(0, len(joined) - REPORT_LIST_LIMIT)
        merged[key] = joined[:REPORT_LIST_LIMIT]
    merged["detector"] = total.get("detector") or part.get("detector", "")
    merged["rows_file"] = total.get("rows_file") or part.get("rows_file", "manifest")
    return merged


def report_lines(report: dict) -> Iterator[str]:
    """The report as plain text lines (command output)."""
    rows_file = report.get("rows_file", "manifest")
    keys = (
        ("imported", "imported"),
        ("duplicates_skipped", "duplicates skipped"),
        ("rejected", "files rejected"),
        ("rows_rejected", f"{rows_file} rows rejected"),
        ("rows_warned", f"{rows_file} rows kept with a warning"),
        ("faces_found", "faces found"),
        ("faces_too_small", "faces below the minimum size (skipped)"),
        ("near_duplicate_faces", "near-duplicate faces (flagged)"),
        ("images_without_faces", "images without faces"),
        ("labels_imported", "labels imported"),
    )
    for key, title in keys:
        if key in report:
            yield f"{title}: {report[key]}"
    for item in report.get("duplicates", []):
        yield f"  skipped {item['file']}: {item['reason']}"
    for item in report.get("rejected_files", []):
        yield f"  rejected file {item['file']}: {item['reason']}"
    for item in report.get("rejected_rows", []):
        yield f"  rejected {rows_file} line {item['line']} ({item['file']}): {item['reason']}"
    for item in report.get("row_warnings", []):
        yield f"  warning, {rows_file} line {item['line']} ({item['file']}): {item['reason']}"
    for item in report.get("label_conflicts", []):
        yield (
            f"  conflicting labels for one picture: {rows_file} line {item['line']} "
            f"({item['file']}: {item['labels']}) has the same content as line "
            f"{item['kept_line']} ({item['kept_file']}: {item['kept_labels']}); "
            f"kept {item['kept_file']}"
        )
    missing = report.get("files_without_manifest_row", [])
    if missing:
        yield f"files not listed in the {rows_file} ({len(missing)}): " + ", ".join(missing[:20])
    for note in report.get("notes", []):
        yield f"note: {note}"
