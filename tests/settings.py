"""Test settings: the real settings module, with test-only defaults in the environment."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-" + "k" * 60)
os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "false")

from backoffice.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = False

# On the embedded default (filesystem:// under var/) a test's .delay() would queue real messages
# in the developer's var/celery: the next `make run` would first work through them (every alert a
# test raised, delivered again). Tests publish to a queue of their own, removed when they end.
if CELERY_BROKER_URL.startswith("filesystem://"):  # noqa: F405
    import atexit
    import shutil
    import tempfile
    from pathlib import Path

    _test_queue = Path(tempfile.mkdtemp(prefix="backoffice-test-celery-"))
    atexit.register(shutil.rmtree, _test_queue, True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        **CELERY_BROKER_TRANSPORT_OPTIONS,  # noqa: F405
        **{key: str(_test_queue / name) for key, name in (
            ("data_folder_in", "queue"), ("data_folder_out", "queue"), ("processed_folder", "processed"),
            ("control_folder", "control"),
        )},
    }
    for _folder in ("queue", "processed", "control"):
        (_test_queue / _folder).mkdir()
