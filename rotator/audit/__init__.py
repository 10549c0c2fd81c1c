"""Audit events: one fixed schema, hash-chained in a Redis stream, reviewable and exportable.

Events never carry secret values: only version ids and keyed HMAC fingerprints.

==========  ==================================================================================
module      what lives there
==========  ==================================================================================
events      the event schema (``AuditEvent``, ``StoredEvent``) and the HMAC chain primitives
writer      ``AuditLog``: group-committed appends, fail-closed (``AuditUnavailable``)
spool       the local spool for batches Redis could not take, and their ordered replay
reader      ``AuditReader``: filtered, paged queries, a job's story, JSONL/CSV export
verify      walking the chain across archives and the live stream, naming every break
archive     moving old events to gzip JSONL files without breaking the chain (an event itself)
keyring     the audit keys by epoch (kid), and signatures for anchors, checkpoints, owed events
owed        signing and checking a job's owed terminal event before it is chained
checkpoint  signed heads kept outside Redis (``rotator audit checkpoint``)
==========  ==================================================================================

The Redis side (the append and trim Lua scripts, the key operations) is ``rotator.store.audit``.
Import the public names from here; the submodules are the layout, not the interface.
"""

from rotator.audit.archive import ARCHIVE_DIRNAME, ArchiveResult, archive_files
from rotator.audit.events import (
    CHAIN_LABEL,
    EVENT_FIELDS,
    EXPORT_FIELDS,
    AuditEvent,
    StoredEvent,
    canonical_payload,
    canonical_record,
    chain_hash,
    chain_key,
    parse_entry,
)
from rotator.audit.reader import AuditFilter, AuditPage, AuditReader, Cursor, open_output
from rotator.audit.spool import SPOOL_DIRNAME
from rotator.audit.verify import ChainProblem, VerifyResult
from rotator.audit.writer import AuditLog, AuditStats

__all__ = [
    "ARCHIVE_DIRNAME",
    "CHAIN_LABEL",
    "EVENT_FIELDS",
    "EXPORT_FIELDS",
    "SPOOL_DIRNAME",
    "ArchiveResult",
    "AuditEvent",
    "AuditFilter",
    "AuditLog",
    "AuditPage",
    "AuditReader",
    "AuditStats",
    "ChainProblem",
    "Cursor",
    "StoredEvent",
    "VerifyResult",
    "archive_files",
    "canonical_payload",
    "canonical_record",
    "chain_hash",
    "chain_key",
    "open_output",
    "parse_entry",
]
