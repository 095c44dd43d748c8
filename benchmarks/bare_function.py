"""The baseline of the ingest throughput row: functions-framework parsing the same JSON, no
more (no mapping, no publish). See ingest_wrk.py."""

import json

import functions_framework


@functions_framework.http
def bare(request):
    if request.method == "GET":
        return "ok", 200
    json.loads(request.get_data())
    return "{}", 202, {"Content-Type": "application/json"}
