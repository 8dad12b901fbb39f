"""The policy defaults of SPEC 4.1, the risk state row, and the global kill switch."""

from django.db import migrations


def create_defaults(apps, schema_editor):
    apps.get_model("risk", "RiskLimits").objects.get_or_create(pk=1)
    apps.get_model("risk", "RiskState").objects.get_or_create(pk=1)
    KillSwitch = apps.get_model("risk", "KillSwitch")
    if not KillSwitch.objects.filter(strategy__isnull=True).exists():
        KillSwitch.objects.create(strategy=None)


class Migration(migrations.Migration):
    dependencies = [("risk", "0001_initial")]
    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
