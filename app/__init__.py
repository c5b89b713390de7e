"""The lastmile server: HTTP routes, auth, pages, settings, CLI and the embedded services."""
