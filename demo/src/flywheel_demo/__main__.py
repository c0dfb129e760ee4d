"""``flywheel-demo``: the learning loop end to end on the local stack (``make demo``)."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path
from types import FrameType

from rich.console import Console

from flywheel_demo.run import DemoOptions, run_demo


def parse_args(argv: list[str] | None = None) -> DemoOptions:
    parser = argparse.ArgumentParser(
        prog="flywheel-demo",
        description=(
            "Three simulated client services predict and publish feedback through the SDK; "
            "midway their ground truth drifts. Watch the loop notice (drift alert to a local "
            "webhook and SMTP sink) and re-learn (new model versions)."
        ),
    )
    defaults = DemoOptions()
    parser.add_argument(
        "--duration",
        type=float,
        default=defaults.duration_s,
        help=f"seconds of traffic ({defaults.duration_s:g})",
    )
    parser.add_argument(
        "--drift-at",
        type=float,
        default=defaults.drift_at,
        help=f"the midpoint where the concepts drift, share of the duration ({defaults.drift_at})",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=defaults.rate,
        help=f"predictions and feedback events per second per service ({defaults.rate:g})",
    )
    parser.add_argument(
        "--output", type=Path, default=defaults.output_dir, help="folder of the PNG and run logs"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="traffic and noise seed")
    view = parser.add_mutually_exclusive_group()
    view.add_argument("--live", dest="live", action="store_true", default=None)
    view.add_argument("--plain", dest="live", action="store_false", help="periodic plain lines")
    args = parser.parse_args(argv)
    if args.duration < 20:
        parser.error("--duration: at least 20 seconds")
    if not 0.2 <= args.drift_at <= 0.8:
        parser.error("--drift-at: between 0.2 and 0.8")
    if not 1 <= args.rate <= 500:
        parser.error("--rate: between 1 and 500")
    return DemoOptions(
        duration_s=args.duration,
        drift_at=args.drift_at,
        rate=args.rate,
        output_dir=args.output,
        live=args.live,
        seed=args.seed,
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    console = Console()
    if not console.is_terminal:
        # CI logs and pipes: rich would assume 80 columns and fold the summary table.
        console = Console(width=max(console.width, 150))
    # aiokafka logs its own retries (a topic's metadata not there yet on a broker that
    # just started); the demo reports what matters in its view.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    # SIGTERM (a CI timeout, `kill`) and SIGHUP (the terminal closed) unwind like
    # Ctrl-C, so the demo's services and whatever Kafka/Redis it started are stopped.
    for stop in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, _interrupt)
    try:
        result = run_demo(options, console)
    except KeyboardInterrupt:
        console.print("interrupted: the demo's services were stopped", highlight=False)
        return 130
    console.print(result.summary.table())
    for line in result.summary.lines():
        console.print(line, highlight=False)
    console.print(f"chart: {result.chart}", highlight=False)
    timings = ", ".join(f"{name} {value:.1f}s" for name, value in result.timings.items())
    console.print(f"timings: {timings}", highlight=False)
    return 0 if result.summary.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
