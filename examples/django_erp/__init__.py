"""A minimal Django project wired to crmkit both ways, on one SQLite file.

* ``sales`` is the Django app: ``Customer`` and ``SalesOrder`` models.
* :mod:`.crm` opens crmkit on Django's own database connection and holds the
  crmkit plugin: a saved ``Customer`` becomes a CRM organization (``post_save``
  -> ``crm.sync_customer``), a won opportunity becomes a ``SalesOrder`` row
  created inside crmkit's winning transaction.
* :mod:`.run` is the program: ``python -m examples.django_erp.run`` from the
  repository's root prints a short transcript; ``tests/examples`` runs it.
"""
