from django.contrib import admin
from django.urls import include, path

from annotate.views import auth, home

urlpatterns = [
    path("", home.home, name="home"),
    path("login/", auth.login, name="login"),
    path("logout/", auth.logout, name="logout"),
    path("admin/", admin.site.urls),
    path("", include("annotate.urls")),
    path("", include("modeling.urls")),
]
