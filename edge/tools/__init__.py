"""Around the runtime: benchmark, the fer peer pipeline, a local mosquitto, the service installer."""
