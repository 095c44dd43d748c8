"""Cloud Functions entry points: transport in, service call, status out. Nothing else."""

import functions_framework

from capi_relay import bootstrap
from capi_relay.entrypoints import web


def _origins():
    return bootstrap.settings().allowed_origins


def _ready() -> bool:
    return bootstrap.readiness().ready()


@functions_framework.http
def ingest(request):
    return web.handle_ingest(request, bootstrap.ingest_service, _origins, _ready,
                            bootstrap.gate)


@functions_framework.cloud_event
def process(cloud_event):
    web.handle_process(cloud_event, bootstrap.process_service)


@functions_framework.http
def pull(request):
    return web.handle_pull(request, bootstrap.pull_service)
