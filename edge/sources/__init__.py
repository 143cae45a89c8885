"""Where pictures and sound come from: camera, media file, microphone, and what they share."""
