from django.urls import path

from generation import views

app_name = "generation"

urlpatterns = [
    path("", views.history, name="history"),
    path("new/", views.create, name="create"),
    path("estimate/", views.estimate, name="estimate"),
    path("<uuid:generation_id>/", views.detail, name="detail"),
    path("<uuid:generation_id>/progress/", views.progress, name="progress"),
    path("<uuid:generation_id>/cancel/", views.cancel, name="cancel"),
    path("<uuid:generation_id>/delete/", views.delete, name="delete"),
    path("<uuid:generation_id>/media/<uuid:asset_id>/", views.viewer, name="viewer"),
    path(
        "<uuid:generation_id>/media/<uuid:asset_id>/download/",
        views.download,
        name="download",
    ),
]
