"""``python -m simulators.ameise``."""
from simulators.ameise.app import main

main()
