"""`manage.py study create|add-member|show|refresh-summaries`: study set-up without the admin.

The same services as the web pages (annotate.services.studies, annotate.services.team), so the
same rules; any refusal is one line (CommandError) and changes nothing.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Field

from annotate.labels import ATTRIBUTE_QUESTIONS
from annotate.management.messages import validation_line
from annotate.models import AggregationMethod, MemberRole, Study
from annotate.selectors.studies import StudyNotFound, study_get, study_overview
from annotate.selectors.team import study_members
from annotate.services.studies import study_create
from annotate.services.summaries import study_summaries_refresh
from annotate.services.team import member_add

NO_USER = (
    "no user {username!r}; create the account first, or invite them from the study's Team page"
)


def _default(name: str) -> object:
    field = Study._meta.get_field(name)
    return field.get_default() if isinstance(field, Field) else None


def _attributes(raw: str) -> list[str]:
    return [name.strip() for name in raw.split(",") if name.strip()]


class Command(BaseCommand):
    help = "Create a study, add members to it, or show its settings, members and counts."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        create = actions.add_parser("create", help="Create a study.")
        create.add_argument("slug", help="Short name for URLs and commands: letters, digits, - _.")
        create.add_argument("--title", required=True, help="Title shown to coders.")
        create.add_argument("--description", default="", help="What the study is about.")
        create.add_argument("--instructions", default="", help="Coding instructions.")
        create.add_argument("--k", type=int, default=3, help="Votes per face (default 3).")
        create.add_argument(
            "--attributes",
            default=",".join(ATTRIBUTE_QUESTIONS),
            help="Attributes coders are asked, comma-separated, from: "
            f"{', '.join(ATTRIBUTE_QUESTIONS)} (default: all; '' for none).",
        )
        create.add_argument(
            "--aggregation",
            default=AggregationMethod.MAJORITY,
            help=f"One of: {', '.join(AggregationMethod.values)} (default majority).",
        )
        create.add_argument("--lease-minutes", type=int, default=10, help="Default 10.")
        # The web form's other settings; left out, the model's defaults apply.
        create.add_argument(
            "--min-face-px",
            type=int,
            help=f"Minimum face size, px (default {_default('min_face_px')}).",
        )
        create.add_argument(
            "--escalation-wait-minutes",
            type=int,
            help="How long a split face waits for an extra coder before a researcher decides "
            f"it; 0 sends it straight to a researcher (default {_default('escalation_wait_minutes')}).",
        )
        create.add_argument(
            "--allow-admin-votes",
            action="store_true",
            help="Count admins' (non-blind) votes in agreement figures (default: left out).",
        )

        add = actions.add_parser("add-member", help="Add a user to a study with a role.")
        add.add_argument("slug")
        add.add_argument("username")
        add.add_argument("--role", required=True, choices=MemberRole.values)

        show = actions.add_parser("show", help="Print a study's settings, members and counts.")
        show.add_argument("slug")

        refresh = actions.add_parser(
            "refresh-summaries",
            help="Compute the figures the study, home and agreement pages show, now (after "
            "deploying, or a bulk change, on a large study: a page computes a missing one itself).",
        )
        refresh.add_argument("slug")

    def handle(self, *args, action: str, **options) -> None:
        handler = {
            "create": self._create,
            "add-member": self._add,
            "show": self._show,
            "refresh-summaries": self._refresh,
        }[action]
        try:
            handler(**options)
        except ValidationError as exc:
            raise CommandError(validation_line(exc)) from None

    def _study(self, slug: str) -> Study:
        try:
            return study_get(slug=slug)
        except StudyNotFound as exc:
            raise CommandError(str(exc)) from None

    def _create(self, *, slug: str, **options) -> None:
        study = study_create(
            slug=slug,
            title=options["title"],
            description=options["description"],
            instructions=options["instructions"],
            votes_per_face=options["k"],
            attributes_asked=_attributes(options["attributes"]),
            aggregation=options["aggregation"],
            lease_minutes=options["lease_minutes"],
            **{
                name: options[name]
                for name in ("min_face_px", "escalation_wait_minutes")
                if options[name] is not None
            },
            allow_admin_votes=options["allow_admin_votes"],
        )
        self.stdout.write(
            f"Study '{study.slug}' created (K={study.votes_per_face}, attributes: "
            f"{', '.join(study.attributes_asked) or 'none'}). Add people with: "
            f"python manage.py study add-member {study.slug} USER --role coder"
        )

    def _add(self, *, slug: str, username: str, role: str, **options) -> None:
        study = self._study(slug)
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(NO_USER.format(username=username))
        member_add(study=study, user=user, role=MemberRole(role))
        self.stdout.write(f"{username} is a {role} of study '{study.slug}'.")

    def _refresh(self, *, slug: str, **options) -> None:
        study = self._study(slug)
        count = study_summaries_refresh(study_id=study.pk)
        self.stdout.write(f"{count} summaries of study '{study.slug}' refreshed.")

    def _show(self, *, slug: str, **options) -> None:
        study = self._study(slug)
        overview = study_overview(study=study)
        out = self.stdout.write
        out(f"{study.slug}: {study.title}")
        if study.description:
            out(f"  description: {study.description}")
        out(f"  votes per face (K): {study.votes_per_face}")
        out(f"  lease: {study.lease_minutes} min")
        out(f"  escalation wait: {study.escalation_wait_minutes} min")
        out(f"  attributes asked: {', '.join(study.attributes_asked) or 'none'}")
        out(f"  aggregation: {study.get_aggregation_display()}")
        out(f"  minimum face size: {study.min_face_px} px")
        admin_votes = "counted" if study.allow_admin_votes else "left out"
        out(f"  admin votes in agreement: {admin_votes}")
        out(
            f"  counts: {overview.images} images, {overview.faces} faces "
            f"({overview.faces_open} open, {overview.faces_complete} complete, "
            f"{overview.faces_adjudication} waiting for adjudication, "
            f"{overview.faces_excluded} not faces), {overview.votes} votes"
        )
        members = study_members(study=study)
        out(f"  members: {len(members)}")
        for member in members:
            state = (
                f"paused since {member.paused_at:%Y-%m-%d %H:%M}" if member.is_paused else "active"
            )
            if member.paused_reason:
                state += f" ({member.paused_reason})"
            out(f"    {member.username}: {member.role}, {state}, {member.faces_coded} faces coded")
