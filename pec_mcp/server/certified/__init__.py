"""The ``certified`` toolset: Mensatek's certified email."""
