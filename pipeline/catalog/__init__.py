"""The image catalog: every baked version, its status, lineage, channels and artifacts.

- ``records`` — the values (versions, artifacts, channel moves);
- ``schema`` — tables, SQLite settings, format version and migration;
- ``queries`` — reads, and ``resolve``, the deployer's question;
- ``lifecycle`` — a bake's writes, from ``building`` to its verdict;
- ``channels`` — promote, rollback, revoke and restore;
- ``export`` — the JSON document and its published schema;
- ``leases`` — which machine is baking what (``s3_leases``: beside the S3 document);
- ``api`` — ``Catalog``, the one interface, over a ``CatalogStore``:
  ``sqlite_store`` (a file) or ``s3_store`` (a shared document).
"""

from pipeline.catalog.api import Catalog, CatalogStore
from pipeline.catalog.export import SCHEMA_PATH, SCHEMA_VERSION, dumps, validate
from pipeline.catalog.leases import Lease, LeaseLost
from pipeline.catalog.records import LATEST, STATUSES, Artifact, ChannelEvent, ImageRecord, Move, actor, check_channel

__all__ = ["LATEST", "SCHEMA_PATH", "SCHEMA_VERSION", "STATUSES", "Artifact", "Catalog", "CatalogStore",
           "ChannelEvent", "ImageRecord", "Lease", "LeaseLost", "Move", "actor", "check_channel", "dumps", "validate"]
