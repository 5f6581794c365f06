"""Publication in place: open-format logs (Delta, Iceberg) over the warehouse's own data files
(`warehouse.ops.publish.delta`, `warehouse.ops.publish.iceberg`), and the setting that keeps them current after every commit
(`warehouse.ops.publish.settings`, `warehouse.ops.publish.auto`)."""

from warehouse.ops.publish import auto, iceberg, settings
from warehouse.ops.publish.auto import PublicationWarning
from warehouse.ops.publish.delta import PublishReport, TablePublication, publish

__all__ = ["PublicationWarning", "PublishReport", "TablePublication", "auto", "iceberg", "publish", "settings"]
