"""The back office's admin: the risk and orders ModelAdmins, on the risk officers' site.

The admin is the presentation layer, so it is composed here, at the top of
the layering (SPEC 2): the ModelAdmins need the dashboard and shared
helpers that read both ``orders`` and ``risk``, and ``risk`` must not import
``orders``.
"""

from django.contrib import admin

from backoffice import (  # noqa: F401  (registers the ModelAdmins)
    admin_eod,
    admin_jobs,
    admin_lockouts,
    admin_orders,
    admin_risk,
)
from backoffice.admin_site import BackofficeAdminSite

if not isinstance(admin.site, BackofficeAdminSite):
    # INSTALLED_APPS names plain "django.contrib.admin", whose default site is
    # a stock AdminSite that every app (django-celery-beat too) has already
    # registered on. Turning that instance into a BackofficeAdminSite keeps all
    # those registrations; BackofficeAdminSite adds methods and class
    # attributes only, no instance state, so no __init__ is skipped.
    # (backoffice.admin_apps.BackofficeAdminConfig in INSTALLED_APPS makes this unnecessary.)
    admin.site.__class__ = BackofficeAdminSite
