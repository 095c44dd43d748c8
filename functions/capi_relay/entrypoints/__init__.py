"""Transport: HTTP requests and Pub/Sub pushes in, service calls, statuses out."""
