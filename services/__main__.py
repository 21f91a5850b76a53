"""`python -m services`: the whole system on this machine (see services/embedded.py)."""
from services.embedded import main

main()
