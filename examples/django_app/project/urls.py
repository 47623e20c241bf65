"""The example's routes."""

from django.urls import path
from items import views

urlpatterns = [
    path("health", views.health),
    path("item/<int:item_id>", views.item),
    path("stats", views.stats),
    path("pool", views.pool),
]
