"""Connectors: bring each night's new prices and headlines into the file drop the loaders read.

One small module per job: `protocol` (the provider interfaces and errors), `http` (JSON with retries), `calendar`
(which sessions are due), one module per provider (`yahoo`, `alpaca`, `nyt`), `providers` (by config name),
`store` (what is stored, new dated files) and `fetch` (the orchestration). Pure: no Dagster here; the
`fetched_data` asset (defs/assets/fetch.py) and `llmoe fetch` (cli.py) are thin wrappers.
"""
