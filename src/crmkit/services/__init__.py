"""The services of the CRM facade, one per aggregate (see :mod:`crmkit.app`)."""
