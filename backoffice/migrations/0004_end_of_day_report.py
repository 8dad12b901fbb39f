"""The end-of-day report, readable by officers and auditors."""

import django.utils.timezone
from django.contrib.auth.management import create_permissions
from django.db import migrations, models


def grant_view(apps, schema_editor):
    app_config = apps.get_app_config("backoffice")
    original = getattr(app_config, "models_module", None)
    app_config.models_module = original or True
    create_permissions(app_config, verbosity=0, apps=apps)
    app_config.models_module = original
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = Permission.objects.get(content_type__app_label="backoffice", codename="view_endofdayreport")
    for group in Group.objects.filter(name__in=["Risk officers", "Auditors"]):
        group.permissions.add(view)


class Migration(migrations.Migration):
    dependencies = [("backoffice", "0003_lockout_permissions")]
    operations = [
        migrations.CreateModel(
            name="EndOfDayReport",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("trading_day", models.DateField(unique=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("rows", models.JSONField(default=list, help_text="one entry per strategy, then the account's")),
                ("emailed_at", models.DateTimeField(blank=True, null=True)),
                ("emailed_to", models.JSONField(blank=True, default=list)),
            ],
            options={"verbose_name": "end-of-day report", "ordering": ["-trading_day"]},
        ),
        migrations.RunPython(grant_view, migrations.RunPython.noop),
    ]
