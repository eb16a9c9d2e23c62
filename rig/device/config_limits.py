"""What the firmware does to an mcconf on SET_MCCONF, as data: hardware limits and clamps per version.

Read from vedderb/bldc ``commands.c`` (``comm/commands.c`` from 6.x): the SET_MCCONF handler and
``commands_apply_mcconf_hw_limits`` at the tags 3.55, 3.66, 4.02, 5.00-5.03, 6.00 and the branches
release_6_02, release_6_05, release_6_06, release_7_00, master; the limits from ``hwconf/hw.h`` (generic)
and the hardware headers (``hw_60.h``/``hw_60_core.h``, ``hw_410.h``). Research notes
config-schemas.md section 4, with two corrections read from the sources: the ``foc_overmod_factor``
clamp and the HW_LIM_CURRENT clamp of ``foc_hfi_amb_current`` are already on release_6_06 (not only
7.00); the loop-frequency clamp is skipped when FOC_CONTROL_LOOP_FREQ_DIVIDER >= 2 from 6.06 (not
modelled: the default divider is 1).

Fields are named as in the firmware's mc_configuration (the schema's wire names); a rule whose field a
layout lacks does nothing. Not modelled: dual-motor hardware (motor_type forced to FOC, the loop
frequency limit without the x2), firmware built with DISABLE_HW_LIMITS, ``l_slow_abs_current`` forced
off on 7.00+ hardware whose MCCONF_L_SLOW_ABS_OVERCURRENT is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from rig.protocol.commands import FirmwareVersion, fw

Bounds = tuple[float, float]


@dataclass(frozen=True)
class HwLimits:
    """The HW_LIM_* of one hardware (min, max); None where the header does not define the limit."""

    current: Bounds = (-100.0, 100.0)  # hw.h defaults
    current_abs: Bounds = (0.0, 140.0)
    foc_ctrl_loop_freq: Bounds = (3000.0, 30000.0)
    foc_current_filter: Bounds = (0.05, 1.0)
    current_in: Bounds | None = None
    vin: Bounds | None = None
    erpm: Bounds | None = None
    duty_min: Bounds | None = None
    duty_max: Bounds | None = None
    temp_fet: Bounds | None = None


GENERIC_LIMITS = HwLimits()
GENERIC_DUTY_SINCE = fw("7.00")  # hw.h defines HW_LIM_DUTY_MIN 0..0.1 and HW_LIM_DUTY_MAX 0..1.0 from 7.00
GENERIC_DUTY = {"duty_min": (0.0, 0.1), "duty_max": (0.0, 1.0)}

# By HW_NAME (FW_VERSION's hardware name); the same in every version read.
HW_LIMITS: dict[str, HwLimits] = {
    "60": HwLimits(
        current=(-120.0, 120.0),
        current_in=(-120.0, 120.0),
        current_abs=(0.0, 160.0),
        vin=(6.0, 57.0),
        erpm=(-200e3, 200e3),
        duty_min=(0.0, 0.1),
        duty_max=(0.0, 0.99),
        temp_fet=(-40.0, 110.0),
    ),
    "410": HwLimits(
        current=(-100.0, 100.0),
        current_in=(-100.0, 100.0),
        current_abs=(0.0, 150.0),
        vin=(6.0, 57.0),
        erpm=(-200e3, 200e3),
        duty_min=(0.0, 0.1),
        duty_max=(0.0, 0.95),
        temp_fet=(-40.0, 110.0),
    ),
}


@dataclass(frozen=True)
class Clamp:
    """utils_truncate_number(&mcconf->field, limit) from `since` on (and before `until`, if given).

    `limit` names a HwLimits attribute, or is fixed bounds."""

    field: str
    limit: str | Bounds
    since: FirmwareVersion = fw("3.55")
    until: FirmwareVersion | None = None

    def applies(self, version: FirmwareVersion) -> bool:
        return version >= self.since and (self.until is None or version < self.until)


# In the order the firmware applies them (the scales first, in the SET handler and again in the limits).
CLAMPS: tuple[Clamp, ...] = (
    Clamp("l_current_max_scale", (0.0, 1.0)),
    Clamp("l_current_min_scale", (0.0, 1.0)),
    Clamp("l_erpm_start", (0.0, 1.0), since=fw("6.00")),
    Clamp("foc_overmod_factor", (1.0, 1.5), since=fw("6.06")),
    Clamp("l_current_max", "current"),
    Clamp("l_current_min", "current"),
    Clamp("foc_hfi_amb_current", "current", since=fw("6.06")),
    Clamp("l_in_current_max", "current_in"),
    Clamp("l_in_current_min", "current", until=fw("7.00")),  # the firmware's own slip: HW_LIM_CURRENT
    Clamp("l_in_current_min", "current_in", since=fw("7.00")),
    Clamp("l_abs_current_max", "current_abs"),
    Clamp("l_max_vin", "vin"),
    Clamp("l_min_vin", "vin"),
    Clamp("l_max_erpm", "erpm"),
    Clamp("l_min_erpm", "erpm"),
    Clamp("l_min_duty", "duty_min"),
    Clamp("l_max_duty", "duty_max"),
    Clamp("l_temp_fet_start", "temp_fet"),
    Clamp("l_temp_fet_end", "temp_fet"),
    Clamp("foc_current_filter_const", "foc_current_filter"),
)

# The control-loop frequency: foc_f_sw up to 5.02, foc_f_zv from 5.03 (whichever the layout has). Clamped
# to HW_LIM_FOC_CTRL_LOOP_FREQ when sampling in V0 and V7, else to twice it (the loop runs at half).
LOOP_FREQ_FIELDS = ("foc_f_zv", "foc_f_sw")
V0_V7_BOOL = "foc_sample_v0_v7"  # up to 6.02
V0_V7_MODE = "foc_control_sample_mode"  # from 6.05; FOC_CONTROL_SAMPLE_MODE_V0_V7 = 1 (datatypes.h)
V0_V7_MODE_VALUE = 1
# m_hall_extra_samples from 5.02: 0..2 at >= 90 % of the loop limit, 0..4 at >= 70 %, else 0..10.
HALL_EXTRA_SAMPLES = "m_hall_extra_samples"
HALL_EXTRA_SAMPLES_SINCE = fw("5.02")
HALL_EXTRA_SAMPLES_STEPS = ((0.9, 2), (0.7, 4), (0.0, 10))
# foc_sl_erpm_start to +-0.9 x foc_sl_erpm from 6.05.
SL_ERPM_START_SINCE = fw("6.05")
# From 6.06 SET keeps the old FOC offsets unless bit 1 ("write enabled") of foc_offsets_cal_mode is set.
FOC_OFFSETS_KEPT_SINCE = fw("6.06")
FOC_OFFSETS_WRITE_BIT = 1 << 1
FOC_OFFSET_FIELDS = tuple(
    f"foc_offsets_{what}__{i}" for what in ("current", "voltage", "voltage_undriven") for i in range(3)
)
# GET_MCCONF_DEFAULT copies the current FOC offsets into the defaults from 5.03.
DEFAULT_KEEPS_OFFSETS_SINCE = fw("5.03")
# The appconf field holding the CAN id (a board's defaults carry its own id).
CONTROLLER_ID = "controller_id"


def hw_limits(hw_name: str, version: FirmwareVersion) -> HwLimits:
    """The HW_LIM_* a hardware's firmware of `version` is built with (hw.h's generic ones for others)."""
    limits = HW_LIMITS.get(hw_name)
    if limits is not None:
        return limits
    if version >= GENERIC_DUTY_SINCE:
        return HwLimits(duty_min=GENERIC_DUTY["duty_min"], duty_max=GENERIC_DUTY["duty_max"])
    return GENERIC_LIMITS
