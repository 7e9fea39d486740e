"""The README's front matter from a results folder: a figure and a table.

Writes ``docs/img/readme_adi.png`` (mean deepest-stage ADI per configuration and per-scan ADI
against padding fraction, seed Fig. 4 C-D) and prints the Markdown table of the report's
"At a glance" (sDSC and VR median [IQR], detection with its Wilson 95% interval, deepest-stage
ADI mean ± sd). Both come from ``attndilute.report``, so the README and ``report.html`` agree.

    attndilute demo --out demo-out
    python examples/readme_assets.py --run demo-out            # -> docs/img/readme_adi.png + table
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_PNG = Path(__file__).resolve().parents[1] / "docs" / "img" / "readme_adi.png"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="results folder (attndilute demo --out D)")
    parser.add_argument("--png", type=Path, default=DEFAULT_PNG, help=f"figure to write [{DEFAULT_PNG}]")
    args = parser.parse_args(argv)

    from attndilute.errors import AttnDiluteError
    from attndilute.report.static import readme_assets

    try:
        png, table = readme_assets(args.run, args.png)
    except AttnDiluteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {png}\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
