"""ml_collections configs: one `get_config()` per file, loaded with `--config=configs/<name>.py`."""
