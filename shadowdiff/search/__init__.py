"""Finding divergences nobody recorded: state-guided generation, fuzz runs and seeding from real states.
The only user of Hypothesis. May import ``runtime`` and everything below it.
"""
