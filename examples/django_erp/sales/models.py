"""The ERP's tables: customers and the sales orders won opportunities become."""

from __future__ import annotations

from django.db import models


class Customer(models.Model):
    """A customer of the ERP; saving one syncs its CRM organization.

    ``credit_limit`` caps the total of the customer's orders (``None``: no cap).
    """

    number = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=200)
    vat = models.CharField(max_length=20)
    email = models.EmailField(blank=True)
    credit_limit = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.number} {self.name}"


class SalesOrder(models.Model):
    """A sales order, created by crmkit's plugin when an opportunity is won."""

    number = models.CharField(max_length=20, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    opportunity = models.CharField(max_length=36, unique=True)  # crmkit's id: one order each

    def __str__(self) -> str:
        return self.number
