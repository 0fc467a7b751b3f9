"""The example's Django app: customers and sales orders."""
