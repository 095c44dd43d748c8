"""Cloud Functions entry points: transport in, service call, status out. Nothing else."""

import functions_framework

from capi_relay import bootstrap
from capi_relay.entrypoints import web


def _origins():
    return bootstrap.settings().allowed_origins


def _can_publish() -> bool:
    try:
        bootstrap.publisher().publish(b"{}", {"kind": "healthcheck"})
    except Exception:  # any failure means the function cannot publish now
        return False
    return True


@functions_framework.http
def ingest(request):
    return web.handle_ingest(request, bootstrap.ingest_service, _origins, _can_publish)


@functions_framework.cloud_event
def process(cloud_event):
    web.handle_process(cloud_event, bootstrap.process_service)
