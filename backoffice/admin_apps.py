"""The admin app configured with the back office's site.

Listing ``"backoffice.admin_apps.BackofficeAdminConfig"`` in INSTALLED_APPS
instead of ``"django.contrib.admin"`` makes ``BackofficeAdminSite`` the
default site from the start; ``backoffice.admin`` then has nothing to do.
This module imports no models, so it is safe to name in INSTALLED_APPS.
"""

from django.contrib.admin.apps import AdminConfig


class BackofficeAdminConfig(AdminConfig):
    default_site = "backoffice.admin_site.BackofficeAdminSite"
