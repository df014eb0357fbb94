from django.contrib import admin
from django.urls import include, path

from annotate.views import auth, home, team

urlpatterns = [
    path("", home.home, name="home"),
    path("login/", auth.login, name="login"),
    path("logout/", auth.logout, name="logout"),
    path("reset/<uidb64>/<token>/", team.password_set, name="password_reset_confirm"),
    path("reset/done/", team.password_set_done, name="password_reset_complete"),
    path("admin/", admin.site.urls),
    path("", include("annotate.urls")),
    path("", include("modeling.urls")),
]
