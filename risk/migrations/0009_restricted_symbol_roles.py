"""Risk officers keep the restricted list (add, remove, view); auditors read it."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

OFFICER = ["view", "add", "delete"]


def grant_restricted_symbol_permissions(apps, schema_editor):
    app_config = apps.get_app_config("risk")
    original = getattr(app_config, "models_module", None)
    app_config.models_module = original or True
    create_permissions(app_config, verbosity=0, apps=apps)
    app_config.models_module = original
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    def perm(action):
        return Permission.objects.get(content_type__app_label="risk", codename=f"{action}_restrictedsymbol")

    officers, _ = Group.objects.get_or_create(name="Risk officers")
    auditors, _ = Group.objects.get_or_create(name="Auditors")
    officers.permissions.add(*[perm(action) for action in OFFICER])
    auditors.permissions.add(perm("view"))


class Migration(migrations.Migration):
    dependencies = [
        ("risk", "0008_market_access"),
        ("backoffice", "0002_jobrun_in_core"),
    ]
    operations = [migrations.RunPython(grant_restricted_symbol_permissions, migrations.RunPython.noop)]
