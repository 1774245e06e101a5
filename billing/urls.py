from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("", views.overview, name="overview"),
    # The pack id comes from the form field ``pack``, or from the path for links built per pack.
    path("buy/", views.buy, name="buy"),
    path("buy/<int:pack_id>/", views.buy, name="buy"),
    path("subscribe/", views.subscribe, name="subscribe"),
    path("portal/", views.portal, name="portal"),
    path("success/", views.success, name="success"),
    path("cancel/", views.cancel, name="cancel"),
    path("export.csv", views.export, name="export"),
    path("standin/<str:session_id>/", views.standin_checkout, name="standin"),
]
