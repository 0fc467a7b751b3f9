"""The ``sales`` app."""

from __future__ import annotations

from django.apps import AppConfig


class SalesConfig(AppConfig):
    name = "examples.django_erp.sales"
    label = "sales"
