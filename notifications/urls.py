from django.urls import path

from . import views

app_name = "notifications"

urlpatterns = [
    path("events/", views.payment_plan_events, name="payment_plan_events"),
]
