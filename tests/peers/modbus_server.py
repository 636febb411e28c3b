#!/usr/bin/env python3
"""An independent Modbus TCP panel for interop tests: a pymodbus 3.x server on 127.0.0.1.

Usage: modbus_server.py PORT [UNIT]

Serves 1000 coils, discrete inputs, holding and input registers (addresses 0..999, all
zero, 0-based as on the wire). Clients (the test) flip values with FC 5/6/15/16. Prints
{"ready": true} on stdout once it accepts connections; stops on SIGTERM/SIGKILL or when
stdin closes.
"""
import asyncio
import json
import socket
import sys

SIZE = 1000


def context(unit):
    try:
        # pymodbus >= 3.11: SimData / SimDevice; 4 separate tables ("non-shared").
        from pymodbus.simulator import DataType, SimData, SimDevice

        bits = lambda: [SimData(0, count=SIZE, values=False, datatype=DataType.BITS)]
        regs = lambda: [SimData(0, count=SIZE, values=0, datatype=DataType.REGISTERS)]
        return SimDevice(id=unit, simdata=(bits(), bits(), regs(), regs()))
    except ImportError:
        from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext

        try:
            from pymodbus.datastore import ModbusDeviceContext as Dev
        except ImportError:  # pymodbus < 3.10
            from pymodbus.datastore import ModbusSlaveContext as Dev
        block = lambda v: ModbusSequentialDataBlock(0, [v] * (SIZE + 1))
        dev = Dev(di=block(False), co=block(False), hr=block(0), ir=block(0))
        return ModbusServerContext({unit: dev}, single=False)


async def watch_stdin():
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


async def announce_when_listening(port):
    for _ in range(500):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                print(json.dumps({"ready": True}), flush=True)
                return
        except OSError:
            await asyncio.sleep(0.02)
    print(json.dumps({"error": "server did not start"}), flush=True)


async def main():
    port = int(sys.argv[1])
    unit = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    from pymodbus.server import ModbusTcpServer

    server = ModbusTcpServer(context(unit), address=("127.0.0.1", port))
    serve = asyncio.create_task(server.serve_forever())
    await announce_when_listening(port)
    stdin = asyncio.create_task(watch_stdin())
    await asyncio.wait([serve, stdin], return_when=asyncio.FIRST_COMPLETED)
    await server.shutdown()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
