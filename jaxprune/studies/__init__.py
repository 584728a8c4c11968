"""The papers' procedures, built only from the library's pieces.

  pai   pruning at initialization: prune random inits with any criterion, train them all at once.
"""
