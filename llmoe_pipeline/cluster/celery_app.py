"""The Celery app a cluster worker runs (`celery -A llmoe_pipeline.cluster.celery_app worker`): dagster-celery's
step task, with the broker and settings of the code location's config ($LLMOE_CONFIG, `executor:` section).

dagster-celery's own `dagster-celery worker start` writes the broker URL (with its password) into a file under
DAGSTER_HOME; starting Celery on this module keeps it in the environment only.
"""

from __future__ import annotations

from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from llmoe_pipeline.cluster.celery_config import worker_app_args
from llmoe_pipeline.config.settings import settings_from_env

app = make_app(worker_app_args(settings_from_env().executor))
execute_plan = create_task(app)
