"""The simulated ESC: the device side of the VESC protocol, served where hardware would be."""
