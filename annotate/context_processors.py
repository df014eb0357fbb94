from django.http import HttpRequest

from annotate.roles import Role, user_roles


def roles(request: HttpRequest) -> dict:
    held = user_roles(request.user)
    return {
        "is_coder": Role.CODER in held,
        "is_researcher": Role.RESEARCHER in held or Role.ADMIN in held,
        "is_admin": Role.ADMIN in held,
    }
