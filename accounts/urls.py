from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("data/", views.data, name="data"),
    path("data/export/", views.export, name="export"),
    path("data/exports/<uuid:export_id>/", views.download_export, name="download_export"),
    path("delete/", views.delete_account, name="delete"),
    path("verify/resend/", views.resend_verification, name="resend_verification"),
]
