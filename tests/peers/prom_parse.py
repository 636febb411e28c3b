#!/usr/bin/env python3
"""An independent Prometheus text-format parser (prometheus_client's): reads an exposition on
stdin and prints one JSON line per sample: {"name", "labels", "value"}. Exits 1 with the
parser's message if the text does not parse."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    text = sys.stdin.read()
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                print(json.dumps({"name": s.name, "labels": s.labels, "value": s.value, "type": family.type}))
    except Exception as e:  # the message is the point
        print(f"parse error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
