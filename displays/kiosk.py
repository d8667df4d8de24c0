"""kiosk page (issue 4)."""
routes: list = []
