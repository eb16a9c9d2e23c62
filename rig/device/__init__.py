"""Device facts as data, read by the host and the simulator alike.

- :mod:`rig.device.memory`: the STM32F405 memory map (sectors, app, EEPROM emulation, new-app buffer,
  bootloader) and the address helpers built on it;
- :mod:`rig.device.update_format`: what the new-app buffer holds (header, heatshrink) and what the
  bootloader accepts and erases;
- :mod:`rig.device.timing`: flash and USB timing figures (the simulator's clock and the throughput floor);
- :mod:`rig.device.firmware`: the behaviour of each firmware version, as a table;
- :mod:`rig.device.config_layouts`: the config signature and size of every released version (3.55-7.01);
- :mod:`rig.device.config_limits`: what SET_MCCONF clamps, per version and hardware.

The wire format itself (frames, command ids per version, payload layouts) is :mod:`rig.protocol`.
Nothing here imports the host's operations or the simulator.
"""
