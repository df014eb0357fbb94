app_name = "modeling"

urlpatterns: list = []
