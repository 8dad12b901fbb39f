"""The back office's admin: the risk and orders ModelAdmins, on the risk officers' site.

The admin is the presentation layer, so it is composed here, at the top of
the layering (SPEC 2): the ModelAdmins need the dashboard and shared
helpers that read both ``orders`` and ``risk``, and ``risk`` must not import
``orders``.

The site itself is ``BackofficeAdminSite`` from the start:
``backoffice.admin_apps.BackofficeAdminConfig`` stands for
``django.contrib.admin`` in INSTALLED_APPS.
"""

from backoffice import (  # noqa: F401  (registers the ModelAdmins)
    admin_controls,
    admin_eod,
    admin_jobs,
    admin_lockouts,
    admin_orders,
    admin_reconciliation,
    admin_risk,
)
