"""The roles: Risk officers (see and do everything in the admin), Auditors (see
everything, change nothing) and API clients (no admin; API permissions come
from their strategy grants)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

APPS = ["auth", "risk", "orders", "django_celery_beat"]

OFFICER_CUSTOM = [
    ("risk", "reset_killswitch"),
    ("risk", "activate_global_killswitch"),
    ("risk", "reset_circuit_breaker"),
    ("risk", "transition_mode"),
    ("risk", "pause_strategy"),
    ("orders", "cancel_any_order"),
]
OFFICER_CHANGE = [
    ("risk", "risklimits", ["view", "change"]),
    ("risk", "strategy", ["view", "change", "add"]),
    ("risk", "killswitch", ["view", "change"]),
    ("risk", "riskstate", ["view", "change"]),
    ("risk", "riskevent", ["view"]),
    ("risk", "equitysnapshot", ["view"]),
    ("risk", "jobrun", ["view"]),
    ("orders", "order", ["view"]),
    ("orders", "ordertransition", ["view"]),
    ("orders", "fill", ["view"]),
    ("orders", "position", ["view"]),
    ("orders", "reconciliationrun", ["view"]),
    ("orders", "reconciliationbreak", ["view", "change"]),
    ("django_celery_beat", "periodictask", ["view", "change"]),
    ("django_celery_beat", "intervalschedule", ["view"]),
    ("django_celery_beat", "crontabschedule", ["view"]),
]


def create_roles(apps, schema_editor):
    # Permissions are normally created after migrate; the groups need them now.
    for label in APPS:
        app_config = apps.get_app_config(label)
        original = getattr(app_config, "models_module", None)
        app_config.models_module = original or True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = original
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    def perm(app_label, codename):
        return Permission.objects.get(content_type__app_label=app_label, codename=codename)

    officers, _ = Group.objects.get_or_create(name="Risk officers")
    auditors, _ = Group.objects.get_or_create(name="Auditors")
    Group.objects.get_or_create(name="API clients")
    officer_perms = [perm(a, c) for a, c in OFFICER_CUSTOM]
    auditor_perms = []
    for app_label, model, actions in OFFICER_CHANGE:
        for action in actions:
            officer_perms.append(perm(app_label, f"{action}_{model}"))
        auditor_perms.append(perm(app_label, f"view_{model}"))
    officers.permissions.set(officer_perms)
    auditors.permissions.set(auditor_perms)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("risk", "0002_policy_defaults"),
        ("orders", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
