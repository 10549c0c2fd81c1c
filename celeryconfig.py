"""Celery settings for rotator (Celery settings only; rotator's own live in rotator.config).

At-least-once delivery: a task is acknowledged after it ran, and re-queued if its worker dies.
Every rotation step is idempotent and fenced, so a redelivered message is harmless. Retry
delays never use countdown/ETA (with the Redis broker those re-run near the visibility timeout);
rotator keeps them in its own due-time set.
"""

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_ignore_result = True
result_backend = None
task_serializer = "json"
accept_content = ["json"]
event_serializer = "json"
task_default_delivery_mode = "persistent"
broker_connection_retry_on_startup = True
worker_hijack_root_logger = False
worker_send_task_events = False
task_send_sent_event = False
# A rotation attempt is bounded by the lease (every provider call ends before what is left of
# it, rotator.deadline) and each call by ROTATOR_HTTP_TIMEOUT as a whole. The threads pool does
# not enforce these limits itself: rotator.tasks passes the soft limit to its wait on the event
# loop and cancels what still runs then; the lease lets another worker take over safely.
task_time_limit = 900
task_soft_time_limit = 840
broker_transport_options = {"visibility_timeout": 3600}
