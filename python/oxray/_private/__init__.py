"""oxray's internals. Nothing here is public API."""
