"""``python -m simulators.zoho``."""
from simulators.zoho.app import main

main()
