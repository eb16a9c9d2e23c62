"""The VESC protocol, shared by the host client and the simulated ESC.

- :mod:`rig.protocol.framing`: frames, CRC, streaming decoders (3.48+ resync and <=3.40 state machine).
- :mod:`rig.protocol.commands`: command ids per firmware version.
- :mod:`rig.protocol.values`: the GET_VALUES telemetry layout.
- :mod:`rig.protocol.codecs`: typed payload codecs, both directions.
"""
