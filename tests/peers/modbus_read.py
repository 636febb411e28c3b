#!/usr/bin/env python3
"""An independent Modbus TCP client for interop tests: pymodbus reads one range.

Usage: modbus_read.py HOST PORT UNIT TABLE ADDRESS COUNT
  TABLE: coil | discrete-input | holding | input; ADDRESS is 0-based (as on the wire).

Prints one JSON line: {"values": [...]} (bits as 0/1), {"exception": CODE} or
{"error": "..."}; exits 0 in every case where it could talk to the server.
"""
import json
import sys


def main():
    host, port, unit, table, address, count = sys.argv[1:7]
    port, unit, address, count = int(port), int(unit), int(address), int(count)
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient(host, port=port, timeout=3, retries=0)
    if not client.connect():
        print(json.dumps({"error": f"cannot connect to {host}:{port}"}), flush=True)
        return 1
    call = {
        "coil": client.read_coils,
        "discrete-input": client.read_discrete_inputs,
        "holding": client.read_holding_registers,
        "input": client.read_input_registers,
    }[table]
    try:
        try:
            rr = call(address, count=count, device_id=unit)
        except TypeError:  # pymodbus < 3.9 calls the unit "slave"
            rr = call(address, count=count, slave=unit)
    except Exception as e:  # noqa: BLE001 - report anything to the test
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        return 1
    finally:
        client.close()
    if rr.isError():
        print(json.dumps({"exception": getattr(rr, "exception_code", None), "text": str(rr)}), flush=True)
        return 0
    values = rr.bits[:count] if table in ("coil", "discrete-input") else rr.registers
    print(json.dumps({"values": [int(v) for v in values]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
