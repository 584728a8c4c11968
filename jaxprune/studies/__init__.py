"""The papers' procedures, built only from the library's pieces.

  pai         pruning at initialization: prune random inits with any criterion, train them all.
  lottery     iterative magnitude pruning with rewinding (lottery tickets), controls beside.
  autos       a learned pruning-at-init scorer from lottery survival counts (AutoS).
  structured  Rethinking's pipeline: channel criterion -> policy -> surgery -> fine-tune |
              Scratch-E | Scratch-B; the same modes for unstructured magnitude pruning.
  crowley     Crowley et al.'s greedy Fisher pruning with fine-tuning between removals.
"""
