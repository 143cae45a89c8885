"""Where events go: MQTT (with spool and Home Assistant discovery), JSONL file, statistics."""
