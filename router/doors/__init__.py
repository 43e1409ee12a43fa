"""Front doors: one adapter per client protocol, parsing into the internal model and rendering back."""
