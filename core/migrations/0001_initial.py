"""JobRun moves here from the risk app. State only: the table risk_jobrun stays as it is."""

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("risk", "0001_initial"),  # created the table risk_jobrun
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="JobRun",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                                   verbose_name="ID")),
                        ("name", models.CharField(max_length=100, unique=True)),
                        ("locked_until", models.DateTimeField(blank=True, null=True)),
                        ("lock_token", models.CharField(blank=True, max_length=64)),
                        ("last_started_at", models.DateTimeField(blank=True, null=True)),
                        ("last_succeeded_at", models.DateTimeField(blank=True, null=True)),
                        ("last_failed_at", models.DateTimeField(blank=True, null=True)),
                        ("last_error", models.TextField(blank=True)),
                        ("runs", models.PositiveBigIntegerField(default=0)),
                    ],
                    options={"db_table": "risk_jobrun"},
                ),
            ],
            database_operations=[],
        ),
    ]
