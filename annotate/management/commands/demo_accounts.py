from django.core.management.base import BaseCommand

from annotate.services.demo import demo_accounts_ensure


class Command(BaseCommand):
    help = "Create the demo accounts (an admin, a researcher, three coders) and print them."

    def handle(self, *args, **options) -> None:
        self.stdout.write("Demo accounts (username / password / role):")
        for account in demo_accounts_ensure():
            note = "" if account.created else "  (existed; password unchanged)"
            self.stdout.write(
                f"  {account.username:<11} {account.password:<12} {account.role}{note}"
            )
