"""JobRun moved from risk to core: officers and auditors keep seeing it (core.view_jobrun)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant_core_jobrun(apps, schema_editor):
    app_config = apps.get_app_config("core")
    original = getattr(app_config, "models_module", None)
    app_config.models_module = original or True
    create_permissions(app_config, verbosity=0, apps=apps)
    app_config.models_module = original
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = Permission.objects.get(content_type__app_label="core", codename="view_jobrun")
    stale = Permission.objects.filter(content_type__app_label="risk", codename="view_jobrun")
    for group in Group.objects.filter(name__in=["Risk officers", "Auditors"]):
        group.permissions.add(view)
        group.permissions.remove(*stale)


class Migration(migrations.Migration):
    dependencies = [
        ("backoffice", "0001_roles"),
        ("core", "0001_initial"),
        ("risk", "0004_jobrun_to_core"),
    ]
    operations = [migrations.RunPython(grant_core_jobrun, migrations.RunPython.noop)]
