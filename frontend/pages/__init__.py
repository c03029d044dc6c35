"""One module per page, each with its state."""
