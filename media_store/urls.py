app_name = "media_store"

urlpatterns: list = []
