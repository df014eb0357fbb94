from django.contrib import admin
from django.urls import include, path

from annotate.views import auth, home, media

urlpatterns = [
    path("", home.home, name="home"),
    path("login/", auth.login, name="login"),
    path("logout/", auth.logout, name="logout"),
    path("media/<path:path>", media.media_file, name="media"),
    path("admin/", admin.site.urls),
    path("", include("annotate.urls")),
    path("", include("modeling.urls")),
]
