"""Configs by named field: mcconf/appconf schemas (read at run time from the user's VESC Tool), the codec,
diff, migration across layouts, and settings checked after a write. docs/config-schemas.md.

- :mod:`rig.config.schema`: the XML schema format, fields, the signature (CRC-32C);
- :mod:`rig.config.source`: where schemas come from (VESC Tool folder, exports, the state dir's cache);
- :mod:`rig.config.codec`: blob <-> named values, byte-exact (VESC Tool's and the firmware's encoders);
- :mod:`rig.config.text`: values as text and TOML (units, enum labels);
- :mod:`rig.config.diff`, :mod:`rig.config.migrate`: by field name, within and across layouts;
- :mod:`rig.config.verify`, :mod:`rig.config.apply`: settings written and checked by field;
- :mod:`rig.config.firmware_check`: schemas against the firmware's own serializer (user's bldc checkout).
"""
