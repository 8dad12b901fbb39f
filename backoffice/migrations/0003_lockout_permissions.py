"""Officers see admin login lockouts and lift them; auditors see them (django-axes' tables)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

OFFICERS = [("accessattempt", ["view", "delete"]), ("accessfailurelog", ["view"]), ("accesslog", ["view"])]


def grant(apps, schema_editor):
    app_config = apps.get_app_config("axes")
    original = getattr(app_config, "models_module", None)
    app_config.models_module = original or True
    create_permissions(app_config, verbosity=0, apps=apps)
    app_config.models_module = original
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    officers, _ = Group.objects.get_or_create(name="Risk officers")
    auditors, _ = Group.objects.get_or_create(name="Auditors")
    for model, actions in OFFICERS:
        for action in actions:
            permission = Permission.objects.get(content_type__app_label="axes", codename=f"{action}_{model}")
            officers.permissions.add(permission)
            if action == "view":
                auditors.permissions.add(permission)


class Migration(migrations.Migration):
    dependencies = [
        ("backoffice", "0002_jobrun_in_core"),
        ("axes", "0010_accessattemptexpiration"),
    ]
    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
