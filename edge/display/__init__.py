"""What is shown or written for people: overlay, display backends, framebuffer, video, timeline."""
