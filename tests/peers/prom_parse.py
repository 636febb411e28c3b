#!/usr/bin/env python3
"""An independent Prometheus text-format parser (prometheus_client's): reads an exposition on
stdin and prints one JSON line per sample: {"name", "labels", "value", "type"}. Exits 1 with
the parser's message if the text does not parse.

With --openmetrics it uses prometheus_client's strict OpenMetrics parser (what Prometheus
uses for an `application/openmetrics-text` answer: `# EOF`, counter families named without
`_total`, histogram buckets in order and ending in +Inf); without, the Prometheus text-format
(0.0.4) parser, as a scraper that ignores the content type would read it."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    text = sys.stdin.read()
    parse = openmetrics_families if "--openmetrics" in sys.argv[1:] else text_string_to_metric_families
    try:
        for family in parse(text):
            for s in family.samples:
                print(json.dumps({"name": s.name, "labels": s.labels, "value": s.value, "type": family.type}))
    except Exception as e:  # the message is the point
        print(f"parse error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
