"""vesc-rig: hardware-in-the-loop test rig for VESC-based ESCs."""

__version__ = "0.1.0"
