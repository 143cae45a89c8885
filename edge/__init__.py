"""DSRTER edge daemon: sources, face and speech streams, fusion and sinks."""
