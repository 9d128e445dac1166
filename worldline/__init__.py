"""worldline: the command-line app that wires particles, dynamics, critic and viz."""
