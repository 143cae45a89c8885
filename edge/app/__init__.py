"""The programs: the daemon, clip analysis, systemd notification, and the wiring they share."""
