from django.urls import path

from . import views

app_name = "invitations"

urlpatterns = [
    path("invite/<str:token>/", views.register, name="register"),
    path("practices/<int:practice_id>/request-access/", views.request_access, name="request_access"),
]
