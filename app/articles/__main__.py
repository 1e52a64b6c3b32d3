"""``python -m articles``: the production server (same command as the image's CMD)."""

from .server import main

main()
