#!/usr/bin/env python3
"""The Modbus TCP server of bench scenario 9 (peers): pymodbus (3.11+), on 127.0.0.1 only.

usage: modbus_peer_server.py --units N --registers R --port P --unit-ports P1,P2,...

Serves N units of R holding registers (addresses 0..R-1, all 0). Unit u is reachable two ways,
over the same registers: on port P by its unit id u (1..N), as a multi-unit gateway or an RS-485
line behind one address is, and on its own port Pu under any unit id, as a panel with an address
of its own is. Every tool under test reads the same registers; every read (function code 3) is
counted on this side, per unit, whichever way it came.

Commands, one per line on stdin; one JSON line each on stdout:
  counts          {"reads": [reads of unit 1, ..., unit N]}
  set U A V       holding register A of unit U := V, at once; {"ok": true}
EOF on stdin stops the server. Prints {"ready": true} once every port accepts connections.
"""

import argparse
import asyncio
import functools
import json
import socket
import sys

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice


class Store:
    """The registers of every unit, whichever server (port) a read comes through."""

    def __init__(self, units, registers):
        self.regs = [[0] * registers for _ in range(units)]
        self.reads = [0] * units

    async def action(self, unit, function_code, start_address, address, count, current, set_values):
        """pymodbus' per-access hook: count reads and serve the current truth of unit `unit`."""
        regs = self.regs[unit - 1]
        if function_code == 3:
            self.reads[unit - 1] += 1
        off = address - start_address
        if set_values is None:
            current[off : off + count] = regs[address : address + count]
        else:
            regs[address : address + len(set_values)] = list(set_values)
        return None


def device(store, unit, dev_id, registers):
    return SimDevice(
        id=dev_id,
        simdata=[SimData(0, count=registers, values=0, datatype=DataType.REGISTERS)],
        action=functools.partial(store.action, unit),
    )


async def wait_listening(ports):
    for port in ports:
        for _ in range(500):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                await asyncio.sleep(0.02)
        else:
            return port
    return None


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def commands(store):
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        parts = line.split()
        try:
            if parts == ["counts"]:
                reply({"reads": list(store.reads)})
            elif len(parts) == 4 and parts[0] == "set":
                unit, addr, value = int(parts[1]), int(parts[2]), int(parts[3])
                store.regs[unit - 1][addr] = value
                reply({"ok": True})
            else:
                reply({"error": f"unknown command {line.strip()!r}"})
        except (ValueError, IndexError) as err:
            reply({"error": str(err)})


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--units", type=int, required=True)
    ap.add_argument("--registers", type=int, default=200)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--unit-ports", default="")
    a = ap.parse_args()
    unit_ports = [int(p) for p in a.unit_ports.split(",") if p]
    if unit_ports and len(unit_ports) != a.units:
        reply({"error": "--unit-ports needs one port per unit"})
        return 2
    if len({a.port, *unit_ports}) != 1 + len(unit_ports):
        reply({"error": "every port must differ"})
        return 2
    store = Store(a.units, a.registers)
    servers = [
        ModbusTcpServer(
            [device(store, u, u, a.registers) for u in range(1, a.units + 1)],
            address=("127.0.0.1", a.port),
        )
    ]
    for u, port in enumerate(unit_ports, start=1):
        servers.append(ModbusTcpServer(device(store, u, 0, a.registers), address=("127.0.0.1", port)))
    tasks = [asyncio.create_task(s.serve_forever()) for s in servers]
    missing = await wait_listening([a.port, *unit_ports])
    # A server that could not bind (pymodbus logs it and returns) has ended already.
    await asyncio.sleep(0.1)
    ended = [port for port, t in zip([a.port, *unit_ports], tasks) if t.done()]
    if missing is not None or ended:
        reply({"error": f"port {missing} never accepted a connection" if missing else f"the server on port {ended[0]} ended at start"})
        return 1
    reply({"ready": True})
    await commands(store)
    for s in servers:
        await s.shutdown()
    for t in tasks:
        t.cancel()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        pass
