"""Store webhooks in, canonical events out: verify → parse → map, one file per platform."""
