"""Claims about trained networks: tests that train (or load) a network and assert what the methods
find on it (the demo's results, ranked repair against random filters, implanted faults), as
opposed to the unit tests beside this folder, which check the code against references.
All are marked ``slow``; ``python -m pytest tests/claims`` runs only these."""
