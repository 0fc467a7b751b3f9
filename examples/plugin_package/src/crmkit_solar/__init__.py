"""crmkit-solar: a crmkit plugin for solar installers.

Installed, it adds to every CRM opened with ``load_entry_points=True``:

* the ``solar-install`` pipeline (site survey -> design -> proposal ->
  installed, with a permit wait on hold and a lost stage);
* ``system_kwp``, the system size of an opportunity in kWp (a custom field);
* ``site-survey``, an interaction kind for the technician's visit.

The hooks live in :mod:`crmkit_solar.plugin`, the module the ``crmkit``
entry point names.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
