"""``python -m syncbridge.cli``."""
from syncbridge.cli import main

main()
