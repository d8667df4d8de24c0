"""Displays: the pages people meet (TV board, phone page, branch chooser, kiosk, counter console,
admin), server-rendered with jinja2, live through the feeds, each with a JSON twin. `routes` lists
them for the composition root (hub.app) to mount."""
