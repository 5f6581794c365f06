"""The bottom layer: errors, argument checks, the store seam (fsspec), schemas (tables.yaml), records and
their validation, row buffers, run configurations, and parsed SQL conditions. Imports nothing above it."""
