"""``python -m jifen.portal api``: the portal's web server."""

from __future__ import annotations

import argparse

from jifen.portal.app import build_app
from jifen.portal.settings import PortalSettings

from jifen.kernel.runtime import configure_logging, serve

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="jifen.portal", description="Run the portal.")
    parser.add_argument("command", choices=["api"], help="api: the portal's web server")
    parser.parse_args()
    settings = PortalSettings()
    configure_logging(settings.log_level)
    serve(build_app(settings), settings.host, settings.port, settings.log_level)
