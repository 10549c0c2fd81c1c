"""The HTTP API for the systems that trigger rotations (incident bots, CI, a SOAR).

``rotator api`` serves it with uvicorn; starlette and uvicorn are the optional extra
``rotator[api]``, so nothing here is imported by the worker.

==========  ==================================================================================
module      what lives there
==========  ==================================================================================
auth        bearer tokens: ``ROTATOR_API_TOKENS`` parsing, hashed constant-time lookup, scopes
settings    the API's own settings (``ROTATOR_API_*``): tokens, idempotency TTL, body bound
idempotency ``Idempotency-Key``: one stored response per (token, key), with a TTL, in Redis
queries    request parsing for the read endpoints (job ids, audit filters, limits)
app         the starlette application: route table, the auth/audit wrapper, JSON errors
routes      the endpoint bodies (enqueue, job, targets, target, audit)
openapi     the OpenAPI 3.1 document served at ``/v1/openapi.json``
server      running it under uvicorn
==========  ==================================================================================

Every authenticated call writes one ``api.request`` audit event whose actor is
``api:<token name>``; an enqueue's ``job.enqueued`` event carries the same actor. Requests
without a valid token are logged (method, path, status; never the header) but not audited, so
an unauthenticated client cannot grow the tamper-evident log.
"""
