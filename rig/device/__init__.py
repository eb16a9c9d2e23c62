"""Device facts as data, read by the host and the simulator alike.

- :mod:`rig.device.memory`: the STM32F405 memory map (sectors, app, EEPROM emulation, new-app buffer,
  bootloader) and the address helpers built on it;
- :mod:`rig.device.update_format`: what the new-app buffer holds (header, heatshrink) and what the
  bootloader accepts and erases;
- :mod:`rig.device.timing`: flash and USB timing figures (the simulator's clock and the throughput floor);
- :mod:`rig.device.facts`: a behaviour as version ranges, each with the commit it was read at;
- :mod:`rig.device.firmware`: the releases 3.40 .. 7.01 and every behaviour that differs between them;
- :mod:`rig.device.app_image`: the firmware .bin per generation (size, gap fill, integrity record) and the
  STM32 CRC the firmware checks it with;
- :mod:`rig.device.code_record`: the record Lisp code (and QML) is kept in;
- :mod:`rig.device.config_layouts`: which versions VESC Tool publishes config schemas for, with their
  signatures and sizes (from rig.device.firmware);
- :mod:`rig.device.config_limits`: what SET_MCCONF clamps, per version and hardware.

The wire format itself (frames, command ids per version, payload layouts) is :mod:`rig.protocol`.
Nothing here imports the host's operations or the simulator.
"""
