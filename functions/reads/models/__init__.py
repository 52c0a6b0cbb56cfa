"""Request and response models of the read API, one module per capability."""
