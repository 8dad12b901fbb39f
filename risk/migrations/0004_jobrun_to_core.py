"""JobRun moved to the core app (core.0001_initial). State only: the table risk_jobrun stays."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("risk", "0003_kill_switch_plural"),
        ("core", "0001_initial"),
        # The roles migration grants risk.view_jobrun from the historical models: it runs first.
        ("backoffice", "0001_roles"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="JobRun")],
            database_operations=[],
        ),
    ]
