"""The two streams and where they meet: face stream, speech stream, tracker, smoothing, fusion, events."""
