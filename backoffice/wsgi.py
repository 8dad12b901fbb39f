import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backoffice.settings")
application = get_wsgi_application()
# Everything loaded so far (Django, the apps, their modules) lives as long as the process: moved out
# of the collector's reach, a full collection no longer walks it in the middle of a request (issue 19).
gc.freeze()
