"""Risk officers adjust the ledger (and see adjustments); auditors see them."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):
    app_config = apps.get_app_config("orders")
    original = getattr(app_config, "models_module", None)
    app_config.models_module = original or True
    create_permissions(app_config, verbosity=0, apps=apps)
    app_config.models_module = original
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    def perm(codename):
        return Permission.objects.get(content_type__app_label="orders", codename=codename)

    officers, _ = Group.objects.get_or_create(name="Risk officers")
    auditors, _ = Group.objects.get_or_create(name="Auditors")
    officers.permissions.add(perm("adjust_ledger"), perm("view_ledgeradjustment"))
    auditors.permissions.add(perm("view_ledgeradjustment"))


class Migration(migrations.Migration):
    dependencies = [("orders", "0007_break_life_cycle_ledger_adjustment"), ("backoffice", "0001_roles")]
    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
