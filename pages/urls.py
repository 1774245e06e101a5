from django.urls import path

from pages import views

app_name = "pages"

urlpatterns = [
    path("", views.home, name="home"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("account/data/", views.data, name="data"),
    path("account/data/export/", views.export, name="export"),
    path("account/data/exports/<uuid:export_id>/", views.download_export, name="download_export"),
    path("account/delete/", views.delete_account, name="delete"),
    path("account/verify/resend/", views.resend_verification, name="resend_verification"),
]
