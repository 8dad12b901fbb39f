"""Risk officers and auditors see the alerts that were sent (read-only for both)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):
    app_config = apps.get_app_config("risk")
    original = getattr(app_config, "models_module", None)
    app_config.models_module = original or True
    create_permissions(app_config, verbosity=0, apps=apps)
    app_config.models_module = original
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = Permission.objects.get(content_type__app_label="risk", codename="view_alert")
    for name in ("Risk officers", "Auditors"):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(view)


class Migration(migrations.Migration):
    dependencies = [("risk", "0005_alerts_rebase_event_kinds"), ("backoffice", "0001_roles")]
    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
