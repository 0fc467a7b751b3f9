"""Django settings of the example: one SQLite file, shared with crmkit.

The file is ``$ERP_DATABASE`` (default ``erp.db`` in the working directory).
"""

from __future__ import annotations

import os

SECRET_KEY = "example-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["examples.django_erp.sales"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("ERP_DATABASE", "erp.db"),
        "OPTIONS": {
            # Django's own transactions take SQLite's write lock up front, as
            # crmkit's do, so a writer never fails on a lock upgrade.
            "transaction_mode": "IMMEDIATE",
        },
    }
}
