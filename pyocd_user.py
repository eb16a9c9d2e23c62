"""pyocd user script: makes the VESC MCU target `stm32f405rg` (rig.hardware.swd_target) known to the pyocd command line.

pyocd runs `pyocd_user.py` from the project directory (the current directory, or `--project DIR`) before it looks
up the target type, so from the repo root `pyocd flash -t stm32f405rg image.hex` works. Elsewhere, with vesc-rig
installed, pass this file (or a copy) with `--script PATH`.
"""

import rig.hardware.swd_target

rig.hardware.swd_target.register()
