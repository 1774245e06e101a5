from django.urls import path

from media_store import views

app_name = "media_store"

urlpatterns = [
    path("<uuid:asset_id>/", views.asset, name="asset"),
    path("<uuid:asset_id>/thumbnail/", views.thumbnail, name="thumbnail"),
    path("file/<str:token>/", views.file, name="file"),
]
