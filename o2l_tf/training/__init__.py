"""Distribution strategy, callbacks, pseudo-labels and the fit loop."""
