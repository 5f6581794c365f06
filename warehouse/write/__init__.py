"""The write layer: the buffered `Writer`, live executions (checkpoints, logs, spans), the asyncio writer
and the local write-ahead log."""
